import { generateKeyPairSync } from 'node:crypto';
import type { Express, NextFunction, Request, Response } from 'express';
import { CnblogsStrategy, DiStrategy, ErrorCodes, OAuthKeeperError, OAuthKeeperStrategy, SopStrategy, type Profile, type TokenSet, type VerifyDone } from '../../src/index';
import type { DiSandbox, RunningSandbox, RunningSopSandbox } from '../../src/sandbox/index';
import { startCnblogsSandbox, startDiSandbox, startOAuth2Sandbox } from '../../src/sandbox/index';
import { createTestApp, exampleProvider, login, type TestApp, type TestAppOptions } from '../helpers/app';
import { approveAs, CookieBrowser } from '../helpers/browser-flow';
import { sopSandboxOptions, startSopSandboxForApp } from '../helpers/providers';

/**
 * Passport's contract, as passport-oauth2 users rely on it, through a real
 * `passport.authenticate(name, options)`: a denied authorization, a stale state and a
 * verify that says no end in fail() — so failureRedirect, failureMessage and custom
 * callbacks see them, with the typed error in `info.error` — and a verify's info reaches
 * success() untouched. Every verify shape passport-oauth2 accepts is called as written.
 */

type Decide = (profile: Profile, done: (err: unknown, user?: unknown, info?: Record<string, unknown>) => void) => void;

interface Case {
  name: string;
  sandbox(): Promise<RunningSandbox>;
  strategy(sandbox: RunningSandbox, verify: (tokens: TokenSet, profile: Profile, done: Parameters<Decide>[1]) => void): OAuthKeeperStrategy<any, any>;
}

const sopKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const client = { clientID: 'sandbox-client', clientSecret: 'sandbox-secret' };

const CASES: Case[] = [
  {
    name: 'example',
    sandbox: () => startOAuth2Sandbox(),
    strategy: (s, verify) => new OAuthKeeperStrategy(exampleProvider, { ...client, callbackURL: '/auth/example/callback', baseURL: s.url }, verify),
  },
  {
    name: 'di',
    sandbox: () => startDiSandbox(),
    strategy: (s, verify) => new DiStrategy({ ...client, callbackURL: '/auth/di/callback', baseURL: s.url }, verify),
  },
  {
    name: 'cnblogs',
    sandbox: () => startCnblogsSandbox(),
    strategy: (s, verify) => new CnblogsStrategy({ ...client, callbackURL: '/auth/cnblogs/callback', responseType: 'code', issuer: s.url, apiURL: `${s.url}/api` }, verify),
  },
  {
    name: 'sop',
    sandbox: async () => {
      const sandbox = await startSopSandboxForApp(sopKeys);
      sandbox.engine.settings.autoApprove = false;
      return sandbox;
    },
    strategy: (s, verify) => new SopStrategy(sopSandboxOptions(s as RunningSopSandbox, sopKeys), verify),
  },
];

const ALICE = { username: 'alice', password: 'wonderland' };

/** The info a custom callback received, as JSON can carry it (the typed error by its toJSON). */
function shown(info: unknown): unknown {
  return JSON.parse(JSON.stringify(info ?? null, (key, value) => (key === 'tokenSet' ? '[token set]' : value)));
}

/** Mounts the strategy the way a passport-oauth2 app does, with the keeper's routes off. */
function passportRoutes(name: string) {
  return (app: Express, _keeper: unknown, passport: { use: (s: OAuthKeeperStrategy<any, any>) => void; authenticate: (...args: any[]) => any }) => {
    app.get('/login/:mode', (req: Request, res: Response, next: NextFunction) =>
      passport.authenticate(name, { callbackURL: `/auth/${name}/callback/${req.params['mode']}` })(req, res, next),
    );
    app.get(`/auth/${name}/callback/redirect`, passport.authenticate(name, { failureRedirect: '/failed', failureMessage: true, successReturnToOrRedirect: '/home' }));
    app.get(`/auth/${name}/callback/custom`, (req: Request, res: Response, next: NextFunction) =>
      passport.authenticate(name, (err: Error | null, user: unknown, info: unknown, status: unknown) => {
        res.json({ err: err ? err.message : null, user, info: shown(info), status: status ?? null, authInfo: null });
      })(req, res, next),
    );
    app.get('/failed', (req: Request, res: Response) => {
      res.json({ failed: true, messages: (req.session as { messages?: string[] }).messages ?? [] });
    });
    app.get('/home', (req: Request, res: Response) => {
      res.json({ home: true, user: req.user ?? null, authInfo: shown((req as { authInfo?: unknown }).authInfo) });
    });
  };
}

describe.each(CASES)('$name through plain passport.authenticate', (c) => {
  let t: TestApp;
  let decide: Decide;
  beforeAll(async () => {
    t = await createTestApp({
      startSandbox: c.sandbox,
      strategy: (s) => c.strategy(s, (_tokens, profile, done) => decide(profile, done)),
      keeper: { routes: false },
      routes: (app, keeper, passport) => {
        passport.use(keeper.strategy(c.name));
        passportRoutes(c.name)(app, keeper, passport as never);
      },
    });
  });
  afterAll(async () => {
    await t.close();
  });
  beforeEach(() => {
    decide = (profile, done) => done(null, { id: profile.id, provider: profile.provider });
  });

  /** Starts a login in `mode`, answers at the provider, delivers the callback; returns the browser and the app's answer. */
  async function attempt(mode: 'redirect' | 'custom', decision: 'approve' | 'deny' = 'approve') {
    const browser = new CookieBrowser();
    const start = await browser.visit(`${t.url}/login/${mode}`, { headers: { accept: 'text/html' } });
    expect(start.status).toBe(302);
    const answer = await approveAs(start.location!, ALICE, decision);
    expect(answer.status).toBe(302);
    const callback = new URL(answer.location!);
    const done = await browser.visit(`${t.url}${callback.pathname}${callback.search}`);
    return { browser, done, callback: `${t.url}${callback.pathname}${callback.search}` };
  }

  it('denied at the provider: failureRedirect, with failureMessage in the session', async () => {
    const { browser, done } = await attempt('redirect', 'deny');
    expect([done.status, done.location]).toEqual([302, '/failed']);
    const failed = JSON.parse((await browser.visit(`${t.url}/failed`)).text);
    expect(failed.messages).toEqual([expect.stringContaining('declined')]);
  });

  it('denied at the provider: a custom callback gets (null, false, info with the typed error, 403)', async () => {
    const { done } = await attempt('custom', 'deny');
    const body = JSON.parse(done.text);
    expect(body.err).toBeNull();
    expect(body.user).toBe(false);
    expect(body.status).toBe(403);
    expect(body.info).toEqual({
      message: expect.stringContaining('declined'),
      error: { error: ErrorCodes.PROVIDER_ERROR, message: expect.any(String), provider: c.name, oauthError: 'access_denied' },
    });
  });

  it('a stale (already used) state: failureRedirect, and fail(info, 400) for a custom callback', async () => {
    const first = await attempt('redirect');
    expect(first.done.location).toBe('/home');
    const again = await first.browser.visit(first.callback);
    expect([again.status, again.location]).toEqual([302, '/failed']);
    const failed = JSON.parse((await first.browser.visit(`${t.url}/failed`)).text);
    expect(failed.messages).toEqual([expect.stringContaining('matches no login pending')]);

    const custom = await attempt('custom');
    expect(JSON.parse(custom.done.text).user).toEqual(expect.objectContaining({ provider: c.name }));
    const replayed = JSON.parse((await custom.browser.visit(custom.callback)).text);
    expect([replayed.user, replayed.status, replayed.info.error.error]).toEqual([false, 400, ErrorCodes.STATE_MISMATCH]);
  });

  it('verify says no with a message: failureMessage shows it, a custom callback gets the info as verify gave it', async () => {
    decide = (_profile, done) => done(null, false, { message: 'not on the guest list', reason: 'closed beta' });
    const redirected = await attempt('redirect');
    expect(redirected.done.location).toBe('/failed');
    const failed = JSON.parse((await redirected.browser.visit(`${t.url}/failed`)).text);
    expect(failed.messages).toEqual(['not on the guest list']);
    const custom = JSON.parse((await attempt('custom')).done.text);
    expect([custom.user, custom.info]).toEqual([false, { message: 'not on the guest list', reason: 'closed beta' }]);
  });

  it("verify accepts with info: successReturnToOrRedirect lands, and the verify's info reaches success() untouched", async () => {
    decide = (profile, done) => done(null, { id: profile.id, provider: profile.provider }, { message: 'welcome', tier: 'gold' });
    const redirected = await attempt('redirect');
    expect([redirected.done.status, redirected.done.location]).toEqual([302, '/home']);
    const custom = JSON.parse((await attempt('custom')).done.text);
    expect(custom.err).toBeNull();
    expect(custom.user).toEqual(expect.objectContaining({ provider: c.name }));
    expect(custom.info).toEqual(expect.objectContaining({ message: 'welcome', tier: 'gold', provider: c.name, tokenSet: '[token set]', returnTo: '/' }));
  });

  it('a verify that throws ends in error(), with its real message', async () => {
    decide = () => {
      throw new Error('database is down');
    };
    const custom = JSON.parse((await attempt('custom')).done.text);
    expect(custom.err).toBe(`The ${c.name} verify callback failed: database is down`);
  });
});

describe('every passport-oauth2 verify shape, with and without passReqToCallback', () => {
  const open: TestApp[] = [];
  afterEach(async () => {
    while (open.length > 0) await open.pop()!.close();
  });

  /** Logs in with a strategy built by `make` and returns what verify saw, plus the stored set. */
  async function seenBy(make: (s: RunningSandbox, record: (seen: Record<string, unknown>) => void) => OAuthKeeperStrategy<any, any>, options: TestAppOptions = {}) {
    let seen: Record<string, unknown> = {};
    const t = await createTestApp({ ...options, strategy: (s) => make(s, (x) => (seen = x)) });
    open.push(t);
    const agent = t.agent();
    expect(await login(agent)).toBe('/');
    const stored = (await t.store.get(await t.ownerOf(agent), 'example'))!.tokenSet;
    const me = await agent.get('/me').set('accept', 'application/json').expect(200);
    return { seen, stored, user: me.body.user };
  }

  const base = (s: RunningSandbox) => ({ ...client, callbackURL: '/auth/example/callback', baseURL: s.url });

  it('(tokens, profile, done)', async () => {
    const { seen, stored, user } = await seenBy((s, record) =>
      new OAuthKeeperStrategy(exampleProvider, base(s), (tokens, profile, done) => {
        record({ tokens, profile });
        done(null, { id: profile.id });
      }),
    );
    expect((seen['tokens'] as TokenSet).accessToken).toBe(stored.accessToken);
    expect(user).toEqual({ id: '1001' });
  });

  it('(accessToken, refreshToken, profile, done)', async () => {
    const { seen, stored, user } = await seenBy((s, record) =>
      new OAuthKeeperStrategy(exampleProvider, base(s), (accessToken: string, refreshToken: string | undefined, profile: Profile, done: VerifyDone<unknown>) => {
        record({ accessToken, refreshToken, profile });
        done(null, { id: profile.id, via: 'oauth2-4' });
      }),
    );
    expect(seen).toEqual({ accessToken: stored.accessToken, refreshToken: stored.refreshToken, profile: expect.objectContaining({ id: '1001' }) });
    expect(user).toEqual({ id: '1001', via: 'oauth2-4' });
  });

  it('(accessToken, refreshToken, params, profile, done)', async () => {
    const { seen, stored, user } = await seenBy((s, record) =>
      new OAuthKeeperStrategy(exampleProvider, base(s), (accessToken: string, refreshToken: string | undefined, params: Record<string, unknown>, profile: Profile, done: VerifyDone<unknown>) => {
        record({ accessToken, refreshToken, params, profile });
        done(null, { id: profile.id, via: 'oauth2-5' });
      }),
    );
    expect(seen['accessToken']).toBe(stored.accessToken);
    expect(seen['params']).toEqual(
      expect.objectContaining({ access_token: stored.accessToken, refresh_token: stored.refreshToken, token_type: 'Bearer', scope: 'read', user_id: '1001', expires_in: expect.any(Number) }),
    );
    expect(user).toEqual({ id: '1001', via: 'oauth2-5' });
  });

  it('(req, tokens, profile, done) with passReqToCallback', async () => {
    const { seen, user } = await seenBy((s, record) =>
      new OAuthKeeperStrategy(exampleProvider, { ...base(s), passReqToCallback: true }, (req, tokens, profile, done) => {
        record({ session: req.session !== undefined, tokens, profile });
        done(null, { id: profile.id, via: 'req-4' });
      }),
    );
    expect(seen['session']).toBe(true);
    expect(user).toEqual({ id: '1001', via: 'req-4' });
  });

  it('(req, accessToken, refreshToken, profile, done) with passReqToCallback', async () => {
    const { seen, stored, user } = await seenBy((s, record) =>
      new OAuthKeeperStrategy(exampleProvider, { ...base(s), passReqToCallback: true }, (req: Request, accessToken: string, refreshToken: string | undefined, profile: Profile, done: VerifyDone<unknown>) => {
        record({ path: req.path, accessToken, refreshToken });
        done(null, { id: profile.id, via: 'req-5' });
      }),
    );
    expect(seen).toEqual({ path: '/auth/example/callback', accessToken: stored.accessToken, refreshToken: stored.refreshToken });
    expect(user).toEqual({ id: '1001', via: 'req-5' });
  });

  it('(req, accessToken, refreshToken, params, profile, done) with passReqToCallback', async () => {
    const { seen, stored, user } = await seenBy((s, record) =>
      new OAuthKeeperStrategy(exampleProvider, { ...base(s), passReqToCallback: true }, (req: Request, accessToken: string, _refreshToken: string | undefined, params: Record<string, unknown>, profile: Profile, done: VerifyDone<unknown>) => {
        record({ path: req.path, accessToken, params });
        done(null, { id: profile.id, via: 'req-6' });
      }),
    );
    expect(seen['accessToken']).toBe(stored.accessToken);
    expect(seen['params']).toEqual(expect.objectContaining({ access_token: stored.accessToken, refresh_token: stored.refreshToken }));
    expect(user).toEqual({ id: '1001', via: 'req-6' });
  });

  it('an async verify whose promise rejects reaches error() and the log with its real message, never a token', async () => {
    const warnings: Array<Record<string, unknown>> = [];
    let token = '';
    const t = await createTestApp({
      keeper: { logger: { warn: (_m, fields) => warnings.push(fields ?? {}) } },
      strategy: (s) =>
        new OAuthKeeperStrategy(exampleProvider, base(s), async (tokens: TokenSet) => {
          token = tokens.accessToken;
          throw new Error(`user lookup failed for token ${tokens.accessToken}`);
        }),
    });
    open.push(t);
    const agent = t.agent();
    const start = await agent.get('/auth/example').expect(302);
    const callback = new URL((await fetch(start.headers['location'] as string, { redirect: 'manual' })).headers.get('location')!);
    const res = await agent.get(callback.pathname + callback.search).set('accept', 'application/json').expect(500);
    expect(res.body.error).toBe(ErrorCodes.VERIFY_FAILED);
    expect(res.body.message).toMatch(/^The example verify callback failed: user lookup failed for token \*+$/);
    expect(warnings).toEqual([expect.objectContaining({ code: ErrorCodes.VERIFY_FAILED, message: expect.stringContaining('user lookup failed') })]);
    expect(JSON.stringify(warnings) + res.text).not.toContain(token);
  });
});

describe('per-login options of authenticate()', () => {
  let t: TestApp;
  afterEach(async () => {
    await t.close();
  });

  it('scope, prompt, login_hint and extra parameters reach the provider; app state comes back in info.state', async () => {
    t = await createTestApp({
      keeper: { routes: false },
      routes: (app, keeper, passport) => {
        const strategy = keeper.strategy('example');
        app.get('/connect', passport.authenticate(strategy as never, { scope: ['read', 'write'], prompt: 'consent', loginHint: 'alice@example.com', authorizationParams: { access_type: 'offline', state: 'not-yours' }, state: { invite: 42 } } as never));
        app.get('/auth/example/callback', (req: Request, res: Response, next: NextFunction) =>
          passport.authenticate(strategy as never, (err: Error | null, user: unknown, info: { state?: unknown; tokenSet?: TokenSet }) => {
            res.json({ err: err?.message ?? null, user: user !== false, state: info?.state ?? null, scope: info?.tokenSet?.scope ?? null });
          })(req, res, next),
        );
      },
    });
    const agent = t.agent();
    const start = await agent.get('/connect').expect(302);
    const authorize = new URL(start.headers['location'] as string);
    expect(authorize.searchParams.get('scope')).toBe('read write');
    expect(authorize.searchParams.get('prompt')).toBe('consent');
    expect(authorize.searchParams.get('login_hint')).toBe('alice@example.com');
    expect(authorize.searchParams.get('access_type')).toBe('offline');
    // An extra parameter never replaces one of the flow's own.
    expect(authorize.searchParams.get('state')).not.toBe('not-yours');
    expect(authorize.searchParams.get('state')).not.toContain('42');
    const callback = new URL((await fetch(authorize, { redirect: 'manual' })).headers.get('location')!);
    const done = await agent.get(callback.pathname + callback.search).expect(200);
    expect(done.body).toEqual({ err: null, user: true, state: { invite: 42 }, scope: 'read write' });
  });
});

describe('behind a reverse proxy: relative callback URLs and the logout origin follow Express trust proxy', () => {
  let t: TestApp;
  afterEach(async () => {
    await t.close();
  });

  const forwarded = { 'x-forwarded-host': 'app.example.com', 'x-forwarded-proto': 'https' };

  it('trusted: the redirect_uri is the public URL, and a logout from the public origin is accepted', async () => {
    t = await createTestApp({ routes: (app) => app.set('trust proxy', 'loopback') });
    const agent = t.agent();
    const start = await agent.get('/auth/example').set(forwarded).expect(302);
    expect(new URL(start.headers['location'] as string).searchParams.get('redirect_uri')).toBe('https://app.example.com/auth/example/callback');
    await agent.post('/logout').set(forwarded).set('origin', 'https://app.example.com').expect(204);
  });

  it('not trusted: forged forwarded headers are ignored, for the redirect_uri and the logout origin check', async () => {
    t = await createTestApp();
    const agent = t.agent();
    const start = await agent.get('/auth/example').set(forwarded).expect(302);
    expect(new URL(start.headers['location'] as string).searchParams.get('redirect_uri')).toBe(`${t.url}/auth/example/callback`);
    const refused = await agent.post('/logout').set(forwarded).set('origin', 'https://app.example.com').set('accept', 'application/json').expect(403);
    expect(refused.body.error).toBe(ErrorCodes.CROSS_ORIGIN_REQUEST);
  });
});

describe("passport-oauth2's hooks and options", () => {
  let t: TestApp;
  afterEach(async () => {
    await t.close();
  });

  it('proxy: true trusts X-Forwarded-Proto / -Host for the callback URL without Express trust proxy', async () => {
    t = await createTestApp({ strategy: (s) => new OAuthKeeperStrategy(exampleProvider, { ...client, callbackURL: '/auth/example/callback', baseURL: s.url, proxy: true }) });
    const start = await t.agent().get('/auth/example').set({ 'x-forwarded-host': 'app.example.com', 'x-forwarded-proto': 'https' }).expect(302);
    expect(new URL(start.headers['location'] as string).searchParams.get('redirect_uri')).toBe('https://app.example.com/auth/example/callback');
  });

  it('a subclass adds token parameters (tokenParams) and reads refusals its own way (parseErrorResponse)', async () => {
    class AudienceDi extends DiStrategy {
      override tokenParams(grant: { grantType: 'authorization_code' | 'refresh_token' }): Record<string, string> {
        return { audience: `patents-${grant.grantType}` };
      }
      override parseErrorResponse(error: InstanceType<typeof OAuthKeeperError>) {
        // This platform says "revoked" with a code of its own: the grant is gone.
        return error.oauthError === 'revoked_by_admin'
          ? new OAuthKeeperError(error.code, error.message, { provider: error.provider ?? 'di', oauthError: error.oauthError, grantInvalid: true })
          : error;
      }
    }
    let sandbox!: DiSandbox;
    t = await createTestApp({
      startSandbox: async () => (sandbox = await startDiSandbox({ autoApprove: true })),
      strategy: (s) => new AudienceDi({ ...client, callbackURL: '/auth/di/callback', baseURL: s.url }),
    });
    const agent = t.agent();
    await login(agent, '/auth/di');
    expect(sandbox.lastTokenRequest!.query['audience']).toBe('patents-authorization_code');
    const owner = await t.ownerOf(agent);
    await t.expireToken(owner);
    await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(sandbox.lastTokenRequest!.query['audience']).toBe('patents-refresh_token');
    await t.expireToken(owner);
    sandbox.engine.injectFault('token', { status: 400, body: '{"error":"revoked_by_admin"}' });
    const res = await agent.get('/me').set('accept', 'application/json').expect(401);
    expect(res.body.error).toBe(ErrorCodes.REAUTHORIZATION_REQUIRED);
    expect(await t.store.get(owner, 'di')).toBeNull();
  });
});
