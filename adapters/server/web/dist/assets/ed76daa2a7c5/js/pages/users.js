import * as api from '../api.js';
import {
  h, mount, timeEl, skeletonRows, emptyState, errorState, field, selectEl, modal, confirmDialog, toast, toastError,
} from '../ui.js';

const ROLES = ['admin', 'user', 'viewer'];

export default async function render(root, ctx) {
  const tbody = h('tbody', null, skeletonRows(5, 3));
  mount(root,
    h('div', { class: 'page-head' }, h('h1', { id: 'page-title' }, 'Users'),
      h('div', { class: 'row' },
        h('button', { class: 'btn', onclick: changeOwnPassword }, 'Change my password'),
        h('button', { class: 'btn primary', 'data-add-user': '', onclick: addUser }, 'Add user'))),
    h('p', { class: 'muted' }, 'Admins may do everything; users may read and queue downloads; viewers may only read.'),
    h('div', { class: 'table-wrap' }, h('table', { 'data-users': '' },
      h('thead', null, h('tr', null, h('th', null, 'User'), h('th', null, 'Role'), h('th', { class: 'hide-sm' }, 'Created'),
        h('th', { class: 'hide-sm' }, 'Last login'), h('th', null, ''))), tbody)));

  const me = api.currentUser();

  function row(u) {
    const role = selectEl('role', ROLES, u.role, { 'aria-label': `Role of ${u.username}`, disabled: u.id === me?.id });
    role.addEventListener('change', async () => {
      try { await api.patch(`/users/${u.id}`, { role: role.value }); toast({ level: 'success', title: `${u.username} is now ${role.value}` }); }
      catch (err) { role.value = u.role; toastError(err, 'Could not change the role'); }
    });
    return h('tr', { 'data-user': u.username },
      h('td', null, h('strong', null, u.username), u.email ? h('div', { class: 'muted' }, u.email) : null),
      h('td', null, role),
      h('td', { class: 'hide-sm' }, timeEl(u.created_at)), h('td', { class: 'hide-sm' }, timeEl(u.last_login)),
      h('td', { class: 'actions' },
        h('button', { class: 'btn small', onclick: () => resetPassword(u) }, 'Reset password'),
        u.id !== me?.id ? h('button', { class: 'btn small danger', 'data-action': 'delete', onclick: () => removeUser(u) }, 'Delete') : null));
  }

  async function load() {
    try {
      const res = await api.get('/users');
      if (!ctx.isCurrent()) return;
      const users = Array.isArray(res) ? res : res.users || res.items || [];
      mount(tbody, users.length ? users.map(row) : h('tr', null, h('td', { colspan: 5 }, emptyState('No users', 'Add one with "Add user".'))));
    } catch (err) {
      mount(tbody, h('tr', null, h('td', { colspan: 5 }, errorState(err, load))));
    }
  }

  function passwordInput(name = 'password') {
    return h('input', { type: 'password', name, required: true, minlength: 8, autocomplete: 'new-password' });
  }

  function formDialog(title, fields, submitLabel, onSubmit) {
    const error = h('p', { class: 'form-error', role: 'alert' });
    const form = h('form', { class: 'stack' }, fields, error,
      h('div', { class: 'row end' }, h('button', { type: 'button', class: 'btn', onclick: () => close() }, 'Cancel'),
        h('button', { type: 'submit', class: 'btn primary' }, submitLabel)));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      if (!form.reportValidity()) return;
      try { await onSubmit(Object.fromEntries(new FormData(form).entries())); close(); }
      catch (err) { error.textContent = err.message; }
    });
    const { close } = modal(title, form);
    form.querySelector('input')?.focus();
  }

  function addUser() {
    formDialog('Add user', [
      field('Username', h('input', { name: 'username', required: true, autocomplete: 'off' })),
      field('Email', h('input', { name: 'email', type: 'email' })),
      field('Role', selectEl('role', ROLES, 'user')),
      field('Password', passwordInput(), 'At least 8 characters'),
    ], 'Add', async (values) => {
      if (!values.email) delete values.email;
      await api.post('/users', values);
      toast({ level: 'success', title: `User ${values.username} added` });
      load();
    });
  }

  function resetPassword(u) {
    formDialog(`Reset password of ${u.username}`, [field('New password', passwordInput(), 'At least 8 characters; their sessions end')], 'Reset', async (values) => {
      await api.patch(`/users/${u.id}`, { password: values.password });
      toast({ level: 'success', title: `Password of ${u.username} reset` });
    });
  }

  function changeOwnPassword() {
    formDialog('Change my password', [
      field('Current password', h('input', { type: 'password', name: 'current_password', required: true, autocomplete: 'current-password' })),
      field('New password', passwordInput('new_password'), 'At least 8 characters'),
    ], 'Change', async (values) => {
      await api.post('/auth/password', values);
      toast({ level: 'success', title: 'Password changed' });
    });
  }

  async function removeUser(u) {
    if (!await confirmDialog('Delete user', `Delete ${u.username}? They are signed out at once.`, { confirmLabel: 'Delete', danger: true })) return;
    try { await api.del(`/users/${u.id}`); load(); } catch (err) { toastError(err); }
  }

  await load();
}
