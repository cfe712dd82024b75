import request from 'supertest';
import { ErrorCodes, type TokenSet } from '../../../src/index';
import type { CnblogsOptions } from '../../../src/providers/cnblogs/index';
import { startCnblogsSandbox, type CnblogsSandbox, type CnblogsSandboxOptions, type IdTokenTamper } from '../../../src/sandbox/cnblogs/index';
import { createTestApp, type TestApp } from '../../helpers/app';
import { parseForm } from '../../helpers/browser-flow';
import { cnblogsDefaultStrategy, cnblogsSandboxStrategy } from '../../helpers/providers';

type Agent = ReturnType<typeof request.agent>;
type Mode = 'default' | 'code' | 'form_post' | 'fragment' | 'code_form_post';

const MODES: Record<Mode, Partial<CnblogsOptions>> = {
  // No responseType: the package's default, the documented hybrid flow in the fragment.
  default: {},
  code: { responseType: 'code' },
  form_post: { responseType: 'code id_token', responseMode: 'form_post' },
  fragment: { responseType: 'code id_token' },
  // Allowed too: the plain code flow delivered as a form_post.
  code_form_post: { responseType: 'code', responseMode: 'form_post' },
};

interface Harness {
  t: TestApp;
  sandbox: CnblogsSandbox;
}

const open: Harness[] = [];

async function setup(mode: Mode, strategy: Partial<CnblogsOptions> = {}, sandboxOptions: CnblogsSandboxOptions = {}): Promise<Harness> {
  let sandbox: CnblogsSandbox | undefined;
  const t = await createTestApp({
    startSandbox: async () => (sandbox = await startCnblogsSandbox({ autoApprove: true, ...sandboxOptions })),
    strategy: (s) => (mode === 'default' ? cnblogsDefaultStrategy : cnblogsSandboxStrategy)(s.url, { ...MODES[mode], ...strategy }),
  });
  const harness = { t, sandbox: sandbox! };
  open.push(harness);
  return harness;
}

afterEach(async () => {
  while (open.length > 0) await open.pop()!.t.close();
});

/** Starts a login and lets the provider answer, as the browser would (without the app's cookie). */
async function authorize(agent: Agent): Promise<{ authorizeURL: URL; answer: Response }> {
  const start = await agent.get('/auth/cnblogs').expect(302);
  const authorizeURL = new URL(start.headers['location'] as string);
  const answer = await fetch(authorizeURL, { redirect: 'manual' });
  return { authorizeURL, answer };
}

/**
 * Plays the browser through the whole callback in the given mode and returns the
 * app's final answer to the callback (303 on success).
 */
async function completeLogin(h: Harness, agent: Agent, mode: Mode, accept = 'application/json'): Promise<request.Response> {
  const { answer } = await authorize(agent);
  if (mode === 'code') {
    expect(answer.status).toBe(302);
    const callback = new URL(answer.headers.get('location')!);
    expect(callback.searchParams.get('code')).toBeTruthy();
    return agent.get(callback.pathname + callback.search).set('accept', accept);
  }
  if (mode === 'form_post' || mode === 'code_form_post') {
    // The provider's page auto-submits a cross-site POST: SameSite=Lax keeps the session cookie out of it.
    expect(answer.status).toBe(200);
    const providerForm = parseForm(await answer.text());
    expect(Object.keys(providerForm.fields).sort()).toEqual(mode === 'form_post' ? ['code', 'id_token', 'scope', 'state'] : ['code', 'scope', 'state']);
    const action = new URL(providerForm.action);
    expect(action.origin).toBe(h.t.url);
    const crossSite = await request(h.t.url).post(action.pathname).type('form').send(providerForm.fields).expect(200);
    expect(crossSite.headers['set-cookie']).toBeUndefined();
    const relay = parseForm(crossSite.text);
    expect(relay.fields).toEqual({ ...providerForm.fields, oauth_keeper_relay: '1' });
    // The relay page re-posts same-origin, so the browser now sends the cookie.
    return agent.post(relay.action).type('form').set('accept', accept).send(relay.fields);
  }
  // fragment: the answer sits after '#', which the browser never sends to the server.
  expect(answer.status).toBe(302);
  const callback = new URL(answer.headers.get('location')!);
  expect(callback.search).toBe('');
  const fragment = Object.fromEntries(new URLSearchParams(callback.hash.slice(1)));
  expect(Object.keys(fragment).sort()).toEqual(['code', 'id_token', 'scope', 'state']);
  const page = await agent.get(callback.pathname).expect(200);
  // No inline script (a strict CSP forbids it): the relay script is a same-origin file.
  expect(page.text).not.toMatch(/<script>|\son\w+=/);
  const script = /<script src="([^"]+)"/.exec(page.text)![1]!;
  expect((await agent.get(script).expect(200)).text).toContain('location.hash');
  const relay = parseForm(page.text);
  // What the relay page's script does: append the fragment's parameters and post them.
  return agent.post(relay.action).type('form').set('accept', accept).send({ ...relay.fields, ...fragment });
}

describe('cnblogs form_post: a parameter given twice', () => {
  it('is refused through the relay page, before any code is spent', async () => {
    const h = await setup('form_post');
    const agent = h.t.agent();
    const { answer } = await authorize(agent);
    const providerForm = parseForm(await answer.text());
    const action = new URL(providerForm.action);
    const body = `${new URLSearchParams(providerForm.fields).toString()}&state=forged`;
    const crossSite = await request(h.t.url).post(action.pathname).type('form').send(body).expect(200);
    const relay = crossSite.text;
    // The relay re-posts every value, the repeated one too, and the strategy refuses it.
    const fields = [...relay.matchAll(/name="state" value="([^"]*)"/g)].map((m) => m[1]);
    expect(fields).toEqual([providerForm.fields['state'], 'forged']);
    const again = await agent.post(action.pathname).type('form').set('accept', 'application/json').send(`${body}&oauth_keeper_relay=1`).expect(400);
    expect(again.body.error).toBe(ErrorCodes.CALLBACK_INVALID);
    expect(h.sandbox.engine.counters.authorizationCode).toBe(0);
  });
});

/** Every token set in the store (one per logged-in session). */
async function storedTokenSets(t: TestApp): Promise<TokenSet[]> {
  const sets: TokenSet[] = [];
  for (const key of await t.redis!.keys(`${t.prefix}tok:*`)) {
    const owner = /\{(.+)\}/.exec(key)![1]!;
    const stored = await t.store.get(owner, 'cnblogs');
    if (stored) sets.push(stored.tokenSet);
  }
  return sets;
}

/** The token set of the only logged-in session. */
async function storedTokenSet(t: TestApp): Promise<TokenSet | undefined> {
  const sets = await storedTokenSets(t);
  expect(sets.length).toBeLessThanOrEqual(1);
  return sets[0];
}

/** Calls the sandbox API the way the proxy will: the provider's `api.attach` on an ApiRequest. */
async function callApi(t: TestApp, path: string, tokenSet: TokenSet): Promise<Response> {
  const api = t.strategy.provider.api!;
  const attached = await api.attach(
    { method: 'GET', url: new URL(`${api.baseURL(t.strategy.options)}${path}`), headers: new Headers({ accept: 'application/json' }) },
    tokenSet,
    t.strategy.options,
  );
  return fetch(attached.url, { method: attached.method, headers: attached.headers });
}

describe.each(['default', 'code', 'form_post', 'fragment', 'code_form_post'] as const)('cnblogs login, %s', (mode) => {
  it('authorizes, stores the token, serves the guarded route and calls the API with Bearer', async () => {
    const h = await setup(mode);
    const agent = h.t.agent();
    const done = await completeLogin(h, agent, mode);
    expect(done.status).toBe(303);
    expect(done.headers['location']).toBe('/');

    const me = await agent.get('/me').set('accept', 'application/json').expect(200);
    const user = h.sandbox.engine.users[0]!;
    expect(me.body).toEqual({
      provider: 'cnblogs',
      scope: 'openid profile CnBlogsApi offline_access',
      user: expect.objectContaining({
        provider: 'cnblogs',
        id: user.id,
        displayName: user.name,
        photos: [{ value: expect.stringMatching(/^https:\/\/pic\.cnblogs\.com\/avatar\//) }],
        raw: expect.objectContaining({ sub: user.id, website: expect.stringContaining('cnblogs.com') }),
      }),
    });

    const tokenSet = (await storedTokenSet(h.t))!;
    expect(tokenSet.tokenType).toBe('Bearer');
    expect(tokenSet.refreshToken).toBeDefined();
    expect(tokenSet.idToken).toBeDefined();
    const users = await callApi(h.t, '/users', tokenSet);
    expect(users.status).toBe(200);
    expect(await users.json()).toMatchObject({ UserId: user.id, DisplayName: user.name, BlogApp: 'alice-sandbox', SpaceUserID: expect.any(Number) });
    const v2 = await callApi(h.t, '/users/v2', tokenSet);
    expect(await v2.json()).toMatchObject({ userId: user.id, displayName: user.name, blogApp: 'alice-sandbox' });

    expect(h.sandbox.engine.counters.authorizationCode).toBe(1);
    expect(h.sandbox.oidcCounters.discovery).toBe(1);
    expect(h.sandbox.oidcCounters.jwks).toBe(1);
  });

  it('sends the documented authorization request: PKCE S256, state, nonce, scope and the response mode', async () => {
    const h = await setup(mode);
    const { authorizeURL } = await authorize(h.t.agent());
    const q = authorizeURL.searchParams;
    expect(authorizeURL.pathname).toBe('/connect/authorize');
    expect(q.get('client_id')).toBe('sandbox-client');
    expect(q.get('scope')).toBe('openid profile CnBlogsApi offline_access');
    expect(q.get('redirect_uri')).toBe(`${h.t.url}/auth/cnblogs/callback`);
    expect(q.get('state')).toMatch(/^[\w-]{40,}$/);
    expect(q.get('nonce')).toMatch(/^[\w-]{40,}$/);
    expect(q.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('response_type')).toBe(mode === 'code' || mode === 'code_form_post' ? 'code' : 'code id_token');
    expect(q.get('response_mode')).toBe({ default: 'fragment', code: null, form_post: 'form_post', fragment: 'fragment', code_form_post: 'form_post' }[mode]);
  });
});

const TAMPER_CODES: Record<IdTokenTamper, string> = {
  signature: ErrorCodes.ID_TOKEN_SIGNATURE_INVALID,
  nonce: ErrorCodes.ID_TOKEN_NONCE_MISMATCH,
  aud: ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH,
  iss: ErrorCodes.ID_TOKEN_ISSUER_MISMATCH,
  expired: ErrorCodes.ID_TOKEN_EXPIRED,
  c_hash: ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH,
  iat_future: ErrorCodes.ID_TOKEN_INVALID,
};

const TAMPER_CASES = (['code', 'form_post', 'fragment'] as const).flatMap((mode) =>
  (Object.keys(TAMPER_CODES) as IdTokenTamper[]).map((tamper) => [mode, tamper] as const),
);

describe('cnblogs id_token checks', () => {
  it.each(TAMPER_CASES)('%s: refuses a %s-tampered id_token with its own error code and leaks nothing', async (mode, tamper) => {
    const h = await setup(mode, {}, { idTokenTamper: tamper });
    const agent = h.t.agent();
    const res = await completeLogin(h, agent, mode);
    // Code flow: the id_token came from the token endpoint (provider's fault, 502).
    // Hybrid: the callback's own id_token is refused first (a bad request, 400).
    expect(res.status).toBe(mode === 'code' ? 502 : 400);
    expect(res.body).toEqual({ error: TAMPER_CODES[tamper], message: expect.any(String), provider: 'cnblogs' });
    expect(res.body.message).toContain(mode === 'code' ? 'token response' : 'callback');

    const everything = JSON.stringify({ headers: res.headers, text: res.text });
    expect(everything).not.toMatch(/eyJ[\w-]+\.eyJ/);
    expect(h.sandbox.issued.length).toBeGreaterThan(0);
    for (const issued of h.sandbox.issued) {
      for (const secret of [issued.code, issued.idToken, issued.accessToken, issued.refreshToken]) {
        if (secret !== undefined) expect(everything).not.toContain(secret);
      }
    }
    expect(everything).not.toContain('sandbox-secret');

    expect(await storedTokenSet(h.t)).toBeUndefined();
    await agent.get('/me').set('accept', 'application/json').expect(401);
    // Hybrid: the front-channel id_token, nonce included, is checked before the code is spent.
    const spent = mode === 'code' ? 1 : 0;
    expect(h.sandbox.engine.counters.authorizationCode).toBe(spent);
  });

  it('downloads the JWKS again when the provider signs with a new key (unknown kid)', async () => {
    const h = await setup('code', { jwksCooldownSeconds: 0 });
    expect((await completeLogin(h, h.t.agent(), 'code')).status).toBe(303);
    expect(h.sandbox.oidcCounters.jwks).toBe(1);
    const before = h.sandbox.signingKeyId;
    const kid = await h.sandbox.rotateSigningKey();
    expect(kid).not.toBe(before);
    expect(h.sandbox.signingKeyId).toBe(kid);

    const agent = h.t.agent();
    expect((await completeLogin(h, agent, 'code')).status).toBe(303);
    expect(h.sandbox.oidcCounters.jwks).toBe(2);
    expect(h.sandbox.oidcCounters.discovery).toBe(1);
    const kids = (await storedTokenSets(h.t)).map((set) => JSON.parse(Buffer.from(set.idToken!.split('.')[0]!, 'base64url').toString()).kid);
    expect(kids.sort()).toEqual([before, kid].sort());
    await agent.get('/me').set('accept', 'application/json').expect(200);
  });

  it('refuses a callback without an id_token when the hybrid flow is configured', async () => {
    const h = await setup('form_post');
    const agent = h.t.agent();
    const { answer } = await authorize(agent);
    const { fields } = parseForm(await answer.text());
    const { id_token: _dropped, ...rest } = fields;
    const res = await agent.post('/auth/cnblogs/callback').type('form').set('accept', 'application/json').send(rest).expect(400);
    expect(res.body.error).toBe(ErrorCodes.ID_TOKEN_INVALID);
    expect(res.body.message).toMatch(/no id_token/);
    expect(h.sandbox.engine.counters.authorizationCode).toBe(0);
  });
});

describe('cnblogs tokens after login', () => {
  it('refreshes an expiring token with grant_type=refresh_token and keeps serving the API', async () => {
    // 30 s lifetime < the keeper's 60 s refresh skew: every guarded request refreshes first.
    const sent: Array<{ url: string; body: string }> = [];
    const recording = (url: string | URL, init: RequestInit) => {
      sent.push({ url: String(url), body: typeof init.body === 'string' ? init.body : '' });
      return fetch(url, init);
    };
    const h = await setup('default', { fetch: recording }, { accessTokenTtlSeconds: 30 });
    const agent = h.t.agent();
    expect((await completeLogin(h, agent, 'default')).status).toBe(303);
    const first = (await storedTokenSet(h.t))!;
    await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(h.sandbox.engine.counters.refresh).toBe(1);
    // As the document's refresh request: grant_type, refresh_token, client_id, client_secret and redirect_uri.
    const refresh = sent.map((r) => Object.fromEntries(new URLSearchParams(r.body))).find((b) => b['grant_type'] === 'refresh_token')!;
    expect(refresh).toEqual({
      grant_type: 'refresh_token',
      refresh_token: first.refreshToken,
      client_id: 'sandbox-client',
      client_secret: 'sandbox-secret',
      redirect_uri: `${h.t.url}/auth/cnblogs/callback`,
    });
    const second = (await storedTokenSet(h.t))!;
    expect(second.accessToken).not.toBe(first.accessToken);
    expect(second.refreshToken).toBeDefined();
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(second.idToken).not.toBe(first.idToken);
    const users = await callApi(h.t, '/users', second);
    expect(users.status).toBe(200);
  });

  it('gets no refresh token without offline_access', async () => {
    const h = await setup('code', { scope: 'openid profile CnBlogsApi' });
    const agent = h.t.agent();
    expect((await completeLogin(h, agent, 'code')).status).toBe(303);
    const set = (await storedTokenSet(h.t))!;
    expect(set.refreshToken).toBeUndefined();
    expect(set.scope).toBe('openid profile CnBlogsApi');
    await agent.get('/me').set('accept', 'application/json').expect(200);
  });

  it('revokes the token at logout (RFC 7009, Basic auth) so the API refuses it', async () => {
    const h = await setup('fragment');
    const agent = h.t.agent();
    expect((await completeLogin(h, agent, 'fragment')).status).toBe(303);
    const set = (await storedTokenSet(h.t))!;
    expect((await callApi(h.t, '/users', set)).status).toBe(200);

    await agent.post('/logout').set('origin', h.t.url).expect(204);
    expect(h.sandbox.engine.counters.revoke).toBe(1);
    expect(await storedTokenSet(h.t)).toBeUndefined();
    const after = await callApi(h.t, '/users', set);
    expect(after.status).toBe(401);
    expect(h.t.strategy.provider.api!.isTokenRejected({ status: after.status, headers: after.headers })).toBe(true);
    await agent.get('/me').set('accept', 'application/json').expect(401);
  });
});
