import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { CnblogsOptions } from '../../src/providers/cnblogs/index';
import { startCnblogsSandbox, type CnblogsSandbox, type CnblogsSandboxClient, type CnblogsSandboxOptions } from '../../src/sandbox/cnblogs/index';
import { createTestApp, type TestApp } from '../helpers/app';
import { launchChromium } from '../helpers/chromium';
import { cnblogsSandboxStrategy } from '../helpers/providers';

/**
 * A real Chromium signs in through the cnblogs sandbox, with the app serving a strict
 * Content-Security-Policy (helmet's default has no 'unsafe-inline' either) and a client
 * registered, as the cnblogs document shows, for the hybrid flow only. The strategy's
 * responseType and responseMode are given explicitly, whatever the defaults are.
 */

const CSP = "default-src 'self'";
const HYBRID_ONLY: CnblogsSandboxClient = { clientId: 'hybrid-client', clientSecret: 'hybrid-secret', allowedResponseTypes: ['code id_token'] };
const CODE_ONLY: CnblogsSandboxClient = { clientId: 'code-client', clientSecret: 'code-secret', allowedResponseTypes: ['code'] };
const CALLBACK = '/auth/cnblogs/callback';

interface Harness {
  t: TestApp;
  sandbox: CnblogsSandbox;
  /** The app as `localhost` while the sandbox is on 127.0.0.1: another site, so its form_post is cross-site. */
  appURL: string;
  /** `METHOD url` of every request the app received: what a server's access log holds. */
  seen: string[];
}

const open: Harness[] = [];

/** `nonce`: the app's per-response CSP nonce, kept where helmet's documentation keeps it (`res.locals.cspNonce`). */
async function setup(
  strategy: Partial<CnblogsOptions>,
  sandboxOptions: CnblogsSandboxOptions = {},
  policy: { csp: string; nonce?: string } = { csp: CSP },
): Promise<Harness> {
  let sandbox: CnblogsSandbox | undefined;
  const seen: string[] = [];
  const t = await createTestApp({
    startSandbox: async () => (sandbox = await startCnblogsSandbox({ clients: [HYBRID_ONLY], ...sandboxOptions })),
    strategy: (s) => cnblogsSandboxStrategy(s.url, { clientID: HYBRID_ONLY.clientId, clientSecret: HYBRID_ONLY.clientSecret, ...strategy }),
    first: (app) =>
      app.use((req, res, next) => {
        seen.push(`${req.method} ${req.originalUrl}`);
        if (policy.nonce !== undefined) res.locals['cspNonce'] = policy.nonce;
        res.set('content-security-policy', policy.csp);
        next();
      }),
    // A control: proves that this browser enforces the policy (an inline script never runs).
    routes: (app) => app.get('/inline', (_req, res) => res.type('html').send('<title>before</title><script>document.title = "ran"</script>')),
  });
  const harness = { t, sandbox: sandbox!, appURL: t.url.replace('127.0.0.1', 'localhost'), seen };
  open.push(harness);
  return harness;
}

let browser: Browser;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  browser = await launchChromium();
});

afterEach(async () => {
  while (contexts.length > 0) await contexts.pop()!.close();
  while (open.length > 0) await open.pop()!.t.close();
});

afterAll(async () => {
  await browser?.close();
});

/** A fresh browser profile; its console errors (a CSP violation is one) are collected, but the favicon's 404s. */
async function newPage(javaScriptEnabled = true): Promise<{ page: Page; consoleErrors: string[] }> {
  const context = await browser.newContext({ javaScriptEnabled });
  contexts.push(context);
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.location().url.endsWith('/favicon.ico')) consoleErrors.push(message.text());
  });
  return { page, consoleErrors };
}

/** Starts the login on the app and approves on the sandbox's own login page. */
async function approve(page: Page, h: Harness): Promise<void> {
  await page.goto(`${h.appURL}/auth/cnblogs?returnTo=%2Fpage`);
  await page.waitForSelector('#approve');
  expect(new URL(page.url()).host).toBe(new URL(h.sandbox.url).host);
  await page.click('#approve');
}

/** Signed in: on the guarded page, and the guarded JSON route answers with the sandbox's user. */
async function expectSignedIn(page: Page, h: Harness): Promise<void> {
  await page.waitForURL(`${h.appURL}/page`);
  expect(await page.textContent('body')).toBe('guarded page');
  const me = await page.request.get(`${h.appURL}/me`, { headers: { accept: 'application/json' } });
  expect(me.status()).toBe(200);
  const user = h.sandbox.engine.users[0]!;
  expect(await me.json()).toMatchObject({ provider: 'cnblogs', user: { provider: 'cnblogs', id: user.id, displayName: user.name } });
  expect(h.sandbox.engine.counters.authorizationCode).toBe(1);
  // No code or token in any URL the app received (its access log) or ended on.
  const urls = h.seen.join('\n') + page.url();
  for (const issued of h.sandbox.issued) {
    for (const secret of [issued.code, issued.idToken, issued.accessToken, issued.refreshToken]) {
      if (secret !== undefined) expect(urls).not.toContain(secret);
    }
  }
}

/** What reached the callback route, the relay script's version replaced by `<v>`. */
function callbackRequests(h: Harness): string[] {
  return h.seen.filter((line) => line.includes(CALLBACK)).map((line) => line.replace(/oauth_keeper_relay=[\w-]+/, 'oauth_keeper_relay=<v>'));
}

describe('the browser under the app\'s strict CSP', () => {
  it('runs no inline script (the control)', async () => {
    const h = await setup({ responseType: 'code id_token', responseMode: 'fragment' });
    const { page, consoleErrors } = await newPage();
    await page.goto(`${h.appURL}/inline`);
    expect(await page.title()).toBe('before');
    expect(consoleErrors.join('\n')).toMatch(/Content Security Policy/);
  });
});

describe.each(['fragment', 'form_post'] as const)('cnblogs hybrid login through a real browser, %s', (responseMode) => {
  it('lands on the app signed in, the relay page working under default-src \'self\'', async () => {
    const h = await setup({ responseType: 'code id_token', responseMode });
    const { page, consoleErrors } = await newPage();
    const script = page.waitForResponse((response) => response.url().includes(`${CALLBACK}?oauth_keeper_relay=`));
    await approve(page, h);
    await expectSignedIn(page, h);

    const first = responseMode === 'fragment' ? `GET ${CALLBACK}` : `POST ${CALLBACK}`;
    expect(callbackRequests(h)).toEqual([first, `GET ${CALLBACK}?oauth_keeper_relay=<v>`, `POST ${CALLBACK}`]);
    const headers = (await script).headers();
    expect(headers['content-type']).toMatch(/^text\/javascript/);
    expect(headers['x-content-type-options']).toBe('nosniff');
    expect(headers['cache-control']).toMatch(/max-age=\d+/);
    expect(headers['content-security-policy']).toBe(CSP);
    expect(consoleErrors).toEqual([]);
  });
});

describe('cnblogs hybrid login under a nonce-only script policy', () => {
  it('puts the app\'s res.locals.cspNonce on the relay script', async () => {
    const nonce = 'bm9uY2Utb2YtdGhpcy1yZXNwb25zZQ';
    const h = await setup({ responseType: 'code id_token', responseMode: 'fragment' }, {}, { csp: `default-src 'self'; script-src 'nonce-${nonce}'`, nonce });
    const { page, consoleErrors } = await newPage();
    await approve(page, h);
    await expectSignedIn(page, h);
    expect(consoleErrors).toEqual([]);
  });
});

describe('cnblogs form_post without JavaScript', () => {
  it('completes through the visible buttons of the provider\'s page and of the relay page', async () => {
    const h = await setup({ responseType: 'code id_token', responseMode: 'form_post' });
    const { page } = await newPage(false);
    await approve(page, h);
    // The sandbox's form_post page, as IdentityServer's: a <noscript> button.
    await page.getByRole('button', { name: 'Click to continue' }).click();
    // The app's relay page: the cross-site POST came without the session cookie.
    await page.waitForURL(`${h.appURL}${CALLBACK}`);
    expect(await page.textContent('body')).toContain('Completing sign-in');
    await page.getByRole('button', { name: 'Continue', exact: true }).click();
    await expectSignedIn(page, h);
    expect(callbackRequests(h)).toEqual([`POST ${CALLBACK}`, `POST ${CALLBACK}`]);
  });

  it('says that the fragment mode needs JavaScript', async () => {
    const h = await setup({ responseType: 'code id_token', responseMode: 'fragment' });
    const { page } = await newPage(false);
    await approve(page, h);
    await page.waitForURL((url) => url.pathname === CALLBACK);
    expect(await page.textContent('body')).toContain('This sign-in needs JavaScript');
    expect(h.sandbox.engine.counters.authorizationCode).toBe(0);
  });
});

describe('a code-only login against a client registered for the hybrid flow only', () => {
  it('stops on the provider\'s error page, as IdentityServer does: unauthorized_client, "Invalid grant type for client"', async () => {
    const h = await setup({ responseType: 'code', responseMode: 'query' });
    const { page } = await newPage();
    await page.goto(`${h.appURL}/auth/cnblogs?returnTo=%2Fpage`);
    expect(new URL(page.url()).host).toBe(new URL(h.sandbox.url).host);
    const text = await page.textContent('body');
    expect(text).toContain('unauthorized_client');
    expect(text).toContain('Invalid grant type for client');
    expect(callbackRequests(h)).toEqual([]);
    const me = await page.request.get(`${h.appURL}/me`, { headers: { accept: 'application/json' } });
    expect(me.status()).toBe(401);
  });

  it('fails with a message naming responseType when the error comes back to the callback', async () => {
    const h = await setup({ responseType: 'code', responseMode: 'query' }, { unauthorizedClient: 'redirect' });
    const { page } = await newPage();
    await page.goto(`${h.appURL}/auth/cnblogs?returnTo=%2Fpage`);
    await page.waitForURL((url) => url.pathname === CALLBACK);
    expect(new URL(page.url()).searchParams.get('error')).toBe('unauthorized_client');
    const text = (await page.textContent('body'))!;
    expect(text).toContain('unauthorized_client');
    expect(text).toContain('responseType');
    expect(text).toContain('"code id_token"');
    expect(h.sandbox.engine.counters.authorizationCode).toBe(0);
    const me = await page.request.get(`${h.appURL}/me`, { headers: { accept: 'application/json' } });
    expect(me.status()).toBe(401);
  });
});

describe('the cnblogs sandbox\'s per-client flows', () => {
  let sandbox: CnblogsSandbox | undefined;
  afterEach(async () => {
    await sandbox?.close();
    sandbox = undefined;
  });

  function authorize(clientId: string, responseType: string): Promise<Response> {
    const url = new URL('/connect/authorize', sandbox!.url);
    const params = { client_id: clientId, response_type: responseType, scope: 'openid', redirect_uri: 'http://localhost:1/cb', state: 'st', nonce: 'n' };
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    return fetch(url, { redirect: 'manual' });
  }

  it('refuses a flow the client is not registered for, either way round, on its error page', async () => {
    sandbox = await startCnblogsSandbox({ autoApprove: true, clients: [HYBRID_ONLY, CODE_ONLY] });
    for (const [client, responseType] of [
      [HYBRID_ONLY, 'code'],
      [CODE_ONLY, 'code id_token'],
    ] as const) {
      const answer = await authorize(client.clientId, responseType);
      expect(answer.status).toBe(400);
      expect(await answer.text()).toBe('<h1>Sorry, there was an error : unauthorized_client</h1><p>Invalid grant type for client</p>');
    }
    expect((await authorize(HYBRID_ONLY.clientId, 'id_token code')).status).toBe(302);
    expect((await authorize(CODE_ONLY.clientId, 'code')).status).toBe(302);
    expect(sandbox.engine.counters.authorize).toBe(2);
  });

  it('sends the refusal back to the redirect_uri in the mode asked for, when told to', async () => {
    sandbox = await startCnblogsSandbox({ autoApprove: true, clients: [CODE_ONLY], unauthorizedClient: 'redirect' });
    const answer = await authorize(CODE_ONLY.clientId, 'code id_token');
    expect(answer.status).toBe(302);
    const back = new URL(answer.headers.get('location')!);
    expect(Object.fromEntries(new URLSearchParams(back.hash.slice(1)))).toEqual({ error: 'unauthorized_client', state: 'st' });
  });

  it('refuses to start with a flow it does not know', async () => {
    const typo = { clientId: 'x', clientSecret: 'y', allowedResponseTypes: ['token'] } as unknown as CnblogsSandboxClient;
    await expect(startCnblogsSandbox({ clients: [typo] })).rejects.toThrow(/unknown allowedResponseTypes token/);
  });
});
