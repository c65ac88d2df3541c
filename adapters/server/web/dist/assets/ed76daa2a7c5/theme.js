// Applies the chosen theme before the first paint (no flash of the wrong
// theme). A classic blocking script, kept tiny, so the page's Content
// Security Policy can forbid inline scripts.
try {
  var theme = localStorage.getItem('mediadl.theme');
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
} catch (e) { /* storage disabled: follow the OS preference */ }
