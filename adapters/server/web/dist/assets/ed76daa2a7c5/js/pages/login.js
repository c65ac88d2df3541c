import * as api from '../api.js';
import { h, mount, field } from '../ui.js';

export default async function render(root, { params, navigate }) {
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'form-error', role: 'alert', id: 'login-error' });
  const submit = h('button', { class: 'btn primary', type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card stack login', 'aria-labelledby': 'page-title' },
    h('h1', { id: 'page-title' }, 'Sign in to mediadl'),
    field('Username', username), field('Password', password), error, submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    try {
      await api.login(username.value.trim(), password.value);
      const next = params.get('next');
      navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/dashboard', { replace: true });
    } catch (err) {
      error.textContent = err.status === 401 ? 'Incorrect username or password. Check both and try again.'
        : err.status === 429 ? 'Too many attempts. Wait a minute, then try again.'
          : err.message;
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  mount(root, form);
  username.focus();
}
