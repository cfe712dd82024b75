/**
 * A browser played over HTTP, for tests that run many logins at once: a cookie jar
 * that, like a browser, ignores ports (two app instances on 127.0.0.1 share the session
 * cookie, as behind a load balancer), the provider's login form filled in as a given
 * user, and the three ways a provider's answer reaches the callback (query, fragment
 * relay, cross-site form_post relay).
 */

export interface Answer {
  status: number;
  location: string | undefined;
  headers: Headers;
  text: string;
}

export function decodeEntities(text: string): string {
  return text
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** Reads a page's first form the way a browser would submit it. */
export function parseForm(html: string): { action: string; fields: Record<string, string> } {
  const form = /<form[^>]*\baction="([^"]*)"/.exec(html);
  if (!form) throw new Error(`no form in: ${html.slice(0, 200)}`);
  const fields: Record<string, string> = {};
  for (const match of html.matchAll(/<input[^>]*\bname="([^"]*)"[^>]*\bvalue="([^"]*)"/g)) {
    fields[decodeEntities(match[1]!)] = decodeEntities(match[2]!);
  }
  return { action: decodeEntities(form[1]!), fields };
}

export interface VisitOptions {
  method?: string;
  form?: Record<string, string>;
  json?: unknown;
  headers?: Record<string, string>;
  /** A cross-site request (a provider's auto-submitted form_post): SameSite=Lax cookies stay home. */
  crossSite?: boolean;
}

export class CookieBrowser {
  readonly #cookies = new Map<string, string>();

  /** One request, redirects not followed; the cookies of the answer are kept. */
  async visit(url: string | URL, options: VisitOptions = {}): Promise<Answer> {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    const cookie = [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (cookie && !options.crossSite) headers['cookie'] = cookie;
    let body: string | undefined;
    if (options.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(options.form).toString();
    } else if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    }
    const response = await fetch(url, {
      method: options.method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      redirect: 'manual',
      // A hung answer fails the test with its cause, not jest's timeout.
      signal: AbortSignal.timeout(15_000),
      ...(body === undefined ? {} : { body }),
    });
    for (const line of response.headers.getSetCookie()) this.#keep(line);
    return { status: response.status, location: response.headers.get('location') ?? undefined, headers: response.headers, text: await response.text() };
  }

  hasCookie(name: string): boolean {
    return this.#cookies.has(name);
  }

  #keep(line: string): void {
    const [pair, ...attributes] = line.split(';');
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq).trim();
    const value = pair!.slice(eq + 1).trim();
    const expires = attributes.find((a) => /^\s*expires=/i.test(a));
    const gone = value === '' || (expires !== undefined && Date.parse(expires.split('=')[1]!) <= Date.now());
    if (gone) this.#cookies.delete(name);
    else this.#cookies.set(name, value);
  }
}

/**
 * Signs in on a sandbox's login page as `user` and approves (or denies): returns the
 * provider's answer (a redirect to the callback, or for form_post the auto-submitting page).
 */
export async function approveAs(authorizeURL: string, user: { username: string; password: string }, decision: 'approve' | 'deny' = 'approve'): Promise<Answer> {
  const provider = new CookieBrowser();
  const page = await provider.visit(authorizeURL);
  if (page.status !== 200) throw new Error(`the sandbox's login page answered ${page.status}`);
  const form = parseForm(page.text);
  const action = new URL(form.action, authorizeURL);
  return provider.visit(action, { form: { ...form.fields, username: user.username, password: user.password, decision } });
}

export type ResponseMode = 'query' | 'fragment' | 'form_post';

/**
 * Delivers the provider's answer to the app as a browser would in `mode`, sending the
 * callback to `appURL` (possibly another instance than the login's), and returns the
 * app's final answer to the callback.
 */
export async function deliverCallback(browser: CookieBrowser, answer: Answer, mode: ResponseMode, appURL: string): Promise<Answer> {
  if (mode === 'form_post') {
    if (answer.status !== 200) throw new Error(`form_post: the provider answered ${answer.status}, not its form page`);
    const providerForm = parseForm(answer.text);
    const action = new URL(providerForm.action);
    const crossSite = await browser.visit(new URL(action.pathname + action.search, appURL), { form: providerForm.fields, crossSite: true });
    if (crossSite.status !== 200) return crossSite;
    const relay = parseForm(crossSite.text);
    return browser.visit(new URL(relay.action, appURL), { form: relay.fields });
  }
  if (answer.status !== 302 || answer.location === undefined) throw new Error(`the provider answered ${answer.status} without a redirect`);
  const callback = new URL(answer.location);
  const target = new URL(callback.pathname + callback.search, appURL);
  if (mode === 'query') return browser.visit(target);
  const page = await browser.visit(target, { headers: { accept: 'text/html' } });
  if (page.status !== 200) return page;
  const relay = parseForm(page.text);
  // What the relay page's script does: append the fragment's parameters and post them.
  const fragment = Object.fromEntries(new URLSearchParams(callback.hash.slice(1)));
  return browser.visit(new URL(relay.action, appURL), { form: { ...relay.fields, ...fragment } });
}
