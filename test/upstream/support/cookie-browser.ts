/**
 * A minimal "browser" for driving sign-in pages over real HTTP with fetch: it keeps cookies per origin and follows
 * redirects by hand, stopping when a redirect leaves for a URL the test wants to inspect (the gateway callback).
 */
export class CookieBrowser {
  readonly #cookies = new Map<string, Map<string, string>>();

  #store(url: URL, response: Response): void {
    const jar = this.#cookies.get(url.origin) ?? new Map<string, string>();
    for (const header of response.headers.getSetCookie()) {
      const [pair] = header.split(';');
      const index = pair?.indexOf('=') ?? -1;
      if (!pair || index < 1) continue;
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(header) || value === '') jar.delete(name);
      else jar.set(name, value);
    }
    this.#cookies.set(url.origin, jar);
  }

  async request(input: string | URL, init: RequestInit = {}): Promise<Response> {
    const url = new URL(input);
    const jar = this.#cookies.get(url.origin);
    const headers = new Headers(init.headers);
    if (jar?.size) headers.set('cookie', [...jar].map(([name, value]) => `${name}=${value}`).join('; '));
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.#store(url, response);
    return response;
  }

  /** Follows redirects from `start` until a non-redirect response or a Location that `stopAt` accepts. */
  async follow(start: string | URL, stopAt: (url: URL) => boolean, init: RequestInit = {}): Promise<{ response?: Response; stoppedAt?: URL }> {
    let response = await this.request(start, init);
    let base = new URL(start);
    for (let hops = 0; hops < 15 && response.status >= 300 && response.status < 400; hops += 1) {
      const location = new URL(response.headers.get('location') ?? '', base);
      await response.body?.cancel();
      if (stopAt(location)) return { stoppedAt: location };
      base = location;
      response = await this.request(location);
    }
    return { response };
  }
}

/** Signs in on the local IdP's form and returns the gateway callback URL the IdP redirected to. */
export async function signInAtLocalIdp(
  browser: CookieBrowser,
  authorizationUrl: string,
  credentials: { username: string; password: string; action?: 'login' | 'cancel' },
  callbackPrefix: string,
): Promise<URL> {
  const isCallback = (url: URL) => url.href.startsWith(callbackPrefix);
  const first = await browser.follow(authorizationUrl, isCallback);
  if (first.stoppedAt) return first.stoppedAt;
  const page = first.response;
  if (!page || page.status !== 200) throw new Error(`expected the sign-in form, got HTTP ${page?.status}`);
  const html = await page.text();
  const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
  if (!action) throw new Error('no sign-in form on the page');
  const formUrl = new URL(action.replace(/&amp;/g, '&'), authorizationUrl);
  const body = new URLSearchParams({ username: credentials.username, password: credentials.password, action: credentials.action ?? 'login' });
  const result = await browser.follow(formUrl, isCallback, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  if (!result.stoppedAt) throw new Error(`sign-in did not reach the callback (HTTP ${result.response?.status}: ${(await result.response?.text())?.slice(0, 300)})`);
  return result.stoppedAt;
}
