import express from 'express';
import { Passport } from 'passport';
import request from 'supertest';
import { randomBytes } from 'node:crypto';
import { ErrorCodes, MemoryBackend, OAuthKeeperStrategy, oauthKeeper, ensureAuthorized, TokenStore } from '../../src/index';
import { createTestApp, exampleProvider, startLogin, visitProvider, type TestApp } from '../helpers/app';

/** Everything a response carried, to check that no secret leaked into it. */
function everything(res: request.Response): string {
  return JSON.stringify({ headers: res.headers, text: res.text });
}

describe('callback error paths: code, status, and nothing leaked', () => {
  let t: TestApp;
  const logs: Array<[string, unknown]> = [];
  beforeEach(async () => {
    logs.length = 0;
    t = await createTestApp({
      keeper: {
        logger: {
          debug: (m, f) => logs.push([m, f]),
          warn: (m, f) => logs.push([m, f]),
        },
      },
    });
  });
  afterEach(async () => {
    await t.close();
  });

  function expectNothingLeaked(res: request.Response, ...secrets: string[]): void {
    const seen = everything(res) + JSON.stringify(logs);
    for (const secret of ['sandbox-secret', ...secrets]) expect(seen).not.toContain(secret);
  }

  it('state missing', async () => {
    const agent = t.agent();
    await startLogin(agent);
    const res = await agent.get('/auth/example/callback?code=abc123').set('accept', 'application/json').expect(400);
    expect(res.body).toMatchObject({ error: ErrorCodes.STATE_MISSING, provider: 'example' });
    expect(res.body.message).toMatch(/no state/);
    expectNothingLeaked(res, 'abc123');
  });

  it('state mismatch (a state this session never issued)', async () => {
    const agent = t.agent();
    const callback = new URL(await startLogin(agent), t.url);
    callback.searchParams.set('state', 'forged-state-value');
    const res = await agent.get(callback.pathname + callback.search).set('accept', 'application/json').expect(400);
    expect(res.body.error).toBe(ErrorCodes.STATE_MISMATCH);
    expectNothingLeaked(res, 'forged-state-value', callback.searchParams.get('code')!);
    expect(t.sandbox.engine.counters.authorizationCode).toBe(0);
  });

  it('state replayed: a state is usable once', async () => {
    const agent = t.agent();
    const callback = await startLogin(agent);
    await agent.get(callback).expect(303);
    const res = await agent.get(callback).set('accept', 'application/json').expect(400);
    expect(res.body.error).toBe(ErrorCodes.STATE_MISMATCH);
  });

  it('no session cookie on the callback names SameSite or the host as the likely cause', async () => {
    const agent = t.agent();
    const callback = await startLogin(agent);
    const res = await request(t.url).get(callback).set('accept', 'application/json').expect(400);
    expect(res.body.error).toBe(ErrorCodes.SESSION_COOKIE_MISSING);
    expect(res.body.message).toMatch(/SameSite/);
    expect(res.body.message).toMatch(/host/);
    expectNothingLeaked(res, new URL(callback, t.url).searchParams.get('code')!);
  });

  it('the provider returned an error (the user denied)', async () => {
    t.sandbox.engine.settings.autoApprove = false;
    const agent = t.agent();
    const start = await agent.get('/auth/example').expect(302);
    const authorize = new URL(start.headers['location'] as string);
    const page = await fetch(authorize);
    expect(await page.text()).toContain('Sign in and authorize');
    const form = new URLSearchParams(authorize.searchParams);
    form.set('decision', 'deny');
    const denied = await fetch(`${t.sandbox.url}/authorize`, { method: 'POST', body: form, redirect: 'manual' });
    const callback = new URL(denied.headers.get('location')!);
    const res = await agent.get(callback.pathname + callback.search).set('accept', 'application/json').expect(403);
    expect(res.body).toMatchObject({ error: ErrorCodes.PROVIDER_ERROR, oauthError: 'access_denied', provider: 'example' });
    expectNothingLeaked(res);
  });

  it('the provider returned another error', async () => {
    const agent = t.agent();
    const callback = new URL(await startLogin(agent), t.url);
    const res = await agent
      .get(`${callback.pathname}?error=server_error&error_description=boom&state=${callback.searchParams.get('state')}`)
      .set('accept', 'application/json')
      .expect(502);
    expect(res.body).toMatchObject({ error: ErrorCodes.PROVIDER_ERROR, oauthError: 'server_error' });
  });

  it('the token endpoint failed (HTTP 500)', async () => {
    t.sandbox.engine.injectFault('token', { status: 500, body: '{"error":"server_error","access_token":"LEAKED-IN-ERROR"}' });
    const agent = t.agent();
    const callback = await startLogin(agent);
    const res = await agent.get(callback).set('accept', 'application/json').expect(502);
    expect(res.body.error).toBe(ErrorCodes.TOKEN_ENDPOINT_FAILED);
    expect(res.body.message).toMatch(/HTTP 500/);
    expectNothingLeaked(res, 'LEAKED-IN-ERROR');
  });

  it('the token endpoint refused the code (invalid_grant)', async () => {
    const agent = t.agent();
    const callback = await startLogin(agent);
    // Spend the code first, as a replaying attacker would.
    const code = new URL(callback, t.url).searchParams.get('code')!;
    await fetch(`${t.sandbox.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, client_id: 'sandbox-client', client_secret: 'sandbox-secret' }),
    });
    const res = await agent.get(callback).set('accept', 'application/json').expect(502);
    expect(res.body).toMatchObject({ error: ErrorCodes.TOKEN_ENDPOINT_FAILED, oauthError: 'invalid_grant' });
    expectNothingLeaked(res, code);
  });

  it('a malformed token response', async () => {
    t.sandbox.engine.injectFault('token', { malformed: true });
    const agent = t.agent();
    const callback = await startLogin(agent);
    const res = await agent.get(callback).set('accept', 'application/json').expect(502);
    expect(res.body.error).toBe(ErrorCodes.TOKEN_RESPONSE_MALFORMED);
    expect(res.body.message).toMatch(/not JSON/);
    expectNothingLeaked(res);
  });

  it('a token response without an access token', async () => {
    t.sandbox.engine.injectFault('token', { body: '{"token_type":"Bearer","refresh_token":"ORPHAN-REFRESH"}' });
    const agent = t.agent();
    const callback = await startLogin(agent);
    const res = await agent.get(callback).set('accept', 'application/json').expect(502);
    expect(res.body.error).toBe(ErrorCodes.TOKEN_RESPONSE_MALFORMED);
    expect(res.body.message).toMatch(/no access_token/);
    expectNothingLeaked(res, 'ORPHAN-REFRESH');
  });

  it('an unreachable token endpoint', async () => {
    const agent = t.agent();
    const callback = await startLogin(agent);
    await t.sandbox.close();
    const res = await agent.get(callback).set('accept', 'application/json').expect(502);
    expect(res.body.error).toBe(ErrorCodes.TOKEN_ENDPOINT_FAILED);
    expect(res.body.message).toMatch(/could not be reached/);
  });

  it('browsers get a page, not JSON, with the code and an escaped message', async () => {
    const agent = t.agent();
    await startLogin(agent);
    const res = await agent.get('/auth/example/callback?code=<script>').set('accept', 'text/html').expect(400);
    expect(res.headers['content-type']).toMatch(/html/);
    expect(res.text).toContain(ErrorCodes.STATE_MISSING);
    expect(res.text).not.toContain('<script>');
  });

  it('no token ever appears in the debug log of a login, a refresh and a logout', async () => {
    const agent = t.agent();
    const callback = await startLogin(agent);
    await agent.get(callback).expect(303);
    const owner = await t.ownerOf(agent);
    const first = (await t.store.get(owner, 'example'))!.tokenSet;
    await t.expireToken(owner);
    await agent.get('/me').set('accept', 'application/json').expect(200);
    const second = (await t.store.get(owner, 'example'))!.tokenSet;
    await agent.post('/logout').set('origin', t.url).expect(204);
    const text = JSON.stringify(logs);
    expect(logs.map(([message]) => message)).toEqual(
      expect.arrayContaining(['login started', 'login completed', 'refresh:start', 'refresh:success']),
    );
    for (const secret of [first.accessToken, first.refreshToken!, second.accessToken, second.refreshToken!]) {
      expect(text).not.toContain(secret);
    }
  });
});

describe('setup errors name what to mount', () => {
  const strategy = () =>
    new OAuthKeeperStrategy(exampleProvider, { clientID: 'c', clientSecret: 's', callbackURL: '/auth/example/callback', baseURL: 'http://127.0.0.1:1' });

  it('a guard without the token middleware fails with MIDDLEWARE_NOT_MOUNTED', async () => {
    const app = express();
    app.get('/guarded', ensureAuthorized('example'), (_req, res) => {
      res.send('unreachable');
    });
    app.use((err: { code: string; status: number; message: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(err.status).json({ code: err.code, message: err.message });
    });
    const res = await request(app).get('/guarded').expect(500);
    expect(res.body.code).toBe(ErrorCodes.MIDDLEWARE_NOT_MOUNTED);
    expect(res.body.message).toMatch(/app\.use\(keeper\.middleware\(\)\)/);
  });

  it('the login route without express-session fails with SESSION_NOT_AVAILABLE', async () => {
    const passport = new Passport();
    const keeper = oauthKeeper({
      strategies: [strategy()],
      store: new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [randomBytes(32)] }),
      passport,
    });
    const app = express();
    app.use(keeper.middleware());
    const res = await request(app).get('/auth/example').set('accept', 'application/json').expect(500);
    expect(res.body.error).toBe(ErrorCodes.SESSION_NOT_AVAILABLE);
    expect(res.body.message).toMatch(/express-session/);
  });

  it('bad options throw at construction with messages that name the fix', () => {
    expect(() => new OAuthKeeperStrategy(exampleProvider, { clientID: '', callbackURL: '/cb', baseURL: 'x' } as never)).toThrow(/needs clientID/);
    expect(() => new OAuthKeeperStrategy(exampleProvider, { clientID: 'c', callbackURL: '/cb', baseURL: 'x' } as never)).toThrow(/needs clientSecret/);
    expect(() => new OAuthKeeperStrategy(exampleProvider, { clientID: 'c', clientSecret: 's', callbackURL: 'cb', baseURL: 'x' })).toThrow(/callbackURL/);
    const store = new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [randomBytes(32)] });
    expect(() => oauthKeeper({ strategies: [], store, passport: new Passport() })).toThrow(/at least one strategy/);
    expect(() => oauthKeeper({ strategies: [strategy(), strategy()], store, passport: new Passport() })).toThrow(/Two strategies are named "example"/);
    expect(() => oauthKeeper({ strategies: [strategy()], store } as never)).toThrow(/needs passport/);
    const keeper = oauthKeeper({ strategies: [strategy()], store, passport: new Passport() });
    expect(() => keeper.ensureAuthorized('nope')).toThrow(/No strategy named "nope"/);
    expect(() => keeper.ensureAuthorized('example', { unauthorized: 'maybe' as never })).toThrow(/"auto", "redirect" or "status"/);
  });

  it('an expired login transaction is refused as a mismatch with a clear message', async () => {
    const t = await createTestApp({ storage: 'memory' });
    try {
      // A strategy whose logins time out immediately.
      const agent = t.agent();
      const start = await agent.get('/auth/example').expect(302);
      const callback = new URL(await visitProvider(start.headers['location'] as string));
      (t.strategy as unknown as { limits: { ttlMs: number } }).limits.ttlMs = 0;
      const res = await agent.get(callback.pathname + callback.search).set('accept', 'application/json').expect(400);
      expect(res.body.error).toBe(ErrorCodes.STATE_MISMATCH);
      expect(res.body.message).toMatch(/loginTimeoutSeconds/);
    } finally {
      await t.close();
    }
  });
});

describe('session cookie with a custom name', () => {
  it('tells a missing cookie apart using sessionCookieName', async () => {
    const t = await createTestApp({ keeper: { sessionCookieName: 'connect.sid' } });
    try {
      const agent = t.agent();
      const callback = await startLogin(agent);
      const res = await request(t.url).get(callback).set('cookie', 'other=1').set('accept', 'application/json').expect(400);
      expect(res.body.error).toBe(ErrorCodes.SESSION_COOKIE_MISSING);
    } finally {
      await t.close();
    }
  });
});

