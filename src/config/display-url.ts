/**
 * A configured URL fit to show on a page or print in a log: no user or password, no fragment, and each query value
 * replaced by `…`. A backend is often keyed in its URL (Azure Functions' `?code=`, an API key parameter); the page
 * and the start-up banner keep the parameter names, so an operator still sees which are set, never their values.
 */
export function displayUrl(value: string): string {
  const url = URL.parse(value);
  if (url === null) return '(not a URL)';
  const names = [...url.searchParams.keys()].map((name) => `${encodeURIComponent(name)}=…`);
  return `${url.origin}${url.pathname}${names.length === 0 ? '' : `?${names.join('&')}`}`;
}
