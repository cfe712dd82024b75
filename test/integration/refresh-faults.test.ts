import { generateKeyPairSync } from 'node:crypto';
import type { Express } from 'express';
import { DiStrategy, ErrorCodes, type Keeper, type TokenSet } from '../../src/index';
import type { Fault, RunningSandbox, RunningSopSandbox } from '../../src/sandbox/index';
import { startCnblogsSandbox, startDiSandbox } from '../../src/sandbox/index';
import { createTestApp, login, type TestApp, type TestAppOptions } from '../helpers/app';
import { cnblogsSandboxStrategy, sopSandboxStrategy, startSopSandboxForApp } from '../helpers/providers';

/**
 * A token endpoint that fails in every way a fault can — cut-off or non-JSON bodies,
 * answers that are not token responses or hold unusable tokens, our own configuration
 * refused, 5xx, 429/503 with Retry-After, no answer at all — never costs the stored
 * tokens: only the provider saying the grant is invalid does. And one request makes at
 * most one refresh cycle (1 + maxRetries attempts), within its time budget, even with the
 * guard and the proxy on one route.
 */

const MAX_RETRIES = 2;
const REFRESH = { retryDelayMs: 5, maxRetries: MAX_RETRIES, requestBudgetMs: 1500 };

function mountProxy(name: string) {
  return (app: Express, keeper: Keeper) => {
    app.use(`/api/${name}`, keeper.ensureAuthorized(name, { unauthorized: 'status' }), keeper.proxy(name));
  };
}

interface Session {
  t: TestApp;
  agent: ReturnType<TestApp['agent']>;
  owner: string;
  before: TokenSet;
}

async function loggedIn(options: TestAppOptions = {}, loginPath = '/auth/example'): Promise<Session> {
  const t = await createTestApp({ keeper: { refresh: REFRESH }, routes: mountProxy(loginPath.split('/').pop()!), ...options });
  const agent = t.agent();
  await login(agent, loginPath);
  const owner = await t.ownerOf(agent);
  return { t, agent, owner, before: (await t.store.get(owner, t.strategy.name))!.tokenSet };
}

/** Token-endpoint requests `run` made, counted by the faults it used up. */
async function attempts(sandbox: RunningSandbox, fault: Fault, run: () => Promise<unknown>): Promise<number> {
  sandbox.engine.injectFault('token', { ...fault, times: 100 });
  const before = sandbox.engine.pendingFaults('token');
  await run();
  const used = before - sandbox.engine.pendingFaults('token');
  sandbox.engine.clearFaults();
  return used;
}

async function expectKept(s: Session): Promise<void> {
  const now = (await s.t.store.get(s.owner, s.t.strategy.name))!.tokenSet;
  expect(now.refreshToken).toBe(s.before.refreshToken);
}

const open: TestApp[] = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close();
});

async function session(options: TestAppOptions = {}, loginPath?: string): Promise<Session> {
  const s = await loggedIn(options, loginPath);
  open.push(s.t);
  return s;
}

// Rotation off: the refresh tokens a cut-off answer carried away are still good, as the issue describes.
const steady: TestAppOptions = { sandbox: { rotateRefreshTokens: false } };

const BAD_ANSWERS: Array<[string, Fault, string]> = [
  ['a 200 cut off mid-JSON', { malformed: true }, ErrorCodes.TOKEN_RESPONSE_MALFORMED],
  ['a 200 that is not JSON', { body: '<html>maintenance</html>' }, ErrorCodes.TOKEN_RESPONSE_MALFORMED],
  ['a 200 JSON that is no token response', { body: '{"status":"ok"}' }, ErrorCodes.TOKEN_RESPONSE_MALFORMED],
  ['an access_token holding CR LF', { body: '{"access_token":"abc\\r\\nSet-Cookie: x=1","token_type":"Bearer","expires_in":3600}' }, ErrorCodes.TOKEN_RESPONSE_MALFORMED],
  ['a whitespace-only access_token', { body: '{"access_token":"   ","token_type":"Bearer","expires_in":3600}' }, ErrorCodes.TOKEN_RESPONSE_MALFORMED],
  ['400 invalid_client (our configuration)', { status: 400, body: '{"error":"invalid_client"}' }, ErrorCodes.TOKEN_ENDPOINT_FAILED],
  ['401 unauthorized_client', { status: 401, body: '{"error":"unauthorized_client"}' }, ErrorCodes.TOKEN_ENDPOINT_FAILED],
  ['500', { status: 500 }, ErrorCodes.REFRESH_UNAVAILABLE],
  ['502 with an HTML page', { status: 502, body: '<html>bad gateway</html>' }, ErrorCodes.REFRESH_UNAVAILABLE],
];

describe('a failing token endpoint never costs the stored tokens', () => {
  it.each(BAD_ANSWERS)('%s: a typed error while expired, the tokens kept, and a later refresh works', async (_name, fault, code) => {
    const s = await session(steady);
    await s.t.expireToken(s.owner);
    const used = await attempts(s.t.sandbox, fault, async () => {
      const res = await s.agent.get('/me').set('accept', 'application/json');
      expect([res.status, res.body.error]).toEqual([code === ErrorCodes.REFRESH_UNAVAILABLE ? 503 : 502, code]);
    });
    expect(used).toBe(code === ErrorCodes.REFRESH_UNAVAILABLE ? 1 + MAX_RETRIES : 1);
    await expectKept(s);
    // The provider is healthy again: the same tokens refresh, nobody logs in again.
    await s.agent.get('/me').set('accept', 'application/json').expect(200);
    expect(s.t.sandbox.engine.counters.refresh).toBeGreaterThanOrEqual(1);
  });

  it('only the provider saying invalid_grant deletes them', async () => {
    const s = await session(steady);
    await s.t.expireToken(s.owner);
    s.t.sandbox.engine.injectFault('token', { status: 400, body: '{"error":"invalid_grant"}' });
    const res = await s.agent.get('/me').set('accept', 'application/json').expect(401);
    expect(res.body.error).toBe(ErrorCodes.REAUTHORIZATION_REQUIRED);
    expect(await s.t.store.get(s.owner, 'example')).toBeNull();
  });

  it('a still-valid token goes on being used while the refresh fails', async () => {
    const s = await session(steady);
    await s.t.expireToken(s.owner, Date.now() + 30_000); // inside the skew: due, not expired
    s.t.sandbox.engine.injectFault('token', { body: '{"access_token":"x\\u0000y"}', times: 10 });
    await s.agent.get('/me').set('accept', 'application/json').expect(200);
    await expectKept(s);
  });
});

describe('one request, one refresh cycle, one time budget', () => {
  it('guard and proxy on one route: 1 + maxRetries token requests, then the still-valid token is used', async () => {
    const s = await session();
    await s.t.expireToken(s.owner, Date.now() + 30_000);
    const used = await attempts(s.t.sandbox, { status: 500 }, async () => {
      const res = await s.agent.get('/api/example/whoami').expect(200);
      expect(res.body.user).toBe('1001');
    });
    expect(used).toBe(1 + MAX_RETRIES);
  });

  it('guard and proxy on one route, token expired: one cycle, then 503 with Retry-After', async () => {
    const s = await session();
    await s.t.expireToken(s.owner);
    const used = await attempts(s.t.sandbox, { status: 503 }, async () => {
      const res = await s.agent.get('/api/example/whoami').expect(503);
      expect(res.body.error).toBe(ErrorCodes.REFRESH_UNAVAILABLE);
      expect(res.headers['retry-after']).toBe('5');
    });
    expect(used).toBe(1 + MAX_RETRIES);
    await expectKept(s);
  });

  it('a token endpoint that never answers: the request is answered within its budget after one attempt', async () => {
    const s = await session();
    await s.t.expireToken(s.owner);
    const never = new Promise<void>(() => undefined);
    const used = await attempts(s.t.sandbox, { until: never }, async () => {
      const res = await s.agent.get('/api/example/whoami').expect(503);
      expect(res.body.error).toBe(ErrorCodes.REFRESH_UNAVAILABLE);
    });
    // The one attempt is still waiting for its answer (it times out on its own later).
    expect(used).toBe(1);
    await expectKept(s);
  });

  it('a still-valid token is used when the refresh does not finish within the budget', async () => {
    const s = await session();
    await s.t.expireToken(s.owner, Date.now() + 30_000);
    const never = new Promise<void>(() => undefined);
    const used = await attempts(s.t.sandbox, { until: never }, async () => {
      await s.agent.get('/api/example/whoami').expect(200);
    });
    expect(used).toBe(1);
  });
});

describe('Retry-After from the token endpoint', () => {
  it('a short one (429, Retry-After: 1) is waited out within the budget, then the refresh succeeds', async () => {
    const s = await session();
    const retries: number[] = [];
    s.t.keeper.events.on('refresh:retry', (event) => retries.push(event.delayMs));
    await s.t.expireToken(s.owner);
    s.t.sandbox.engine.injectFault('token', { status: 429, headers: { 'retry-after': '1' } });
    await s.agent.get('/me').set('accept', 'application/json').expect(200);
    expect(retries).toEqual([1000]);
    expect(s.t.sandbox.engine.counters.refresh).toBe(1);
  });

  it('a long one (503, Retry-After: 120) ends the refresh at once with a 503 carrying it', async () => {
    const s = await session();
    await s.t.expireToken(s.owner);
    const used = await attempts(s.t.sandbox, { status: 503, headers: { 'retry-after': '120' } }, async () => {
      const res = await s.agent.get('/me').set('accept', 'application/json').expect(503);
      expect(res.headers['retry-after']).toBe('120');
      expect(res.body.error).toBe(ErrorCodes.REFRESH_UNAVAILABLE);
    });
    expect(used).toBe(1);
    await expectKept(s);
  });
});

const sopKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });

const PROVIDERS: Array<[string, string, () => TestAppOptions]> = [
  [
    'di',
    '/auth/di',
    () => ({
      startSandbox: () => startDiSandbox({ autoApprove: true }),
      strategy: (s) => new DiStrategy({ clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/di/callback', baseURL: s.url }),
    }),
  ],
  [
    'cnblogs',
    '/auth/cnblogs',
    () => ({ startSandbox: () => startCnblogsSandbox({ autoApprove: true }), strategy: (s) => cnblogsSandboxStrategy(s.url, { scope: 'openid profile CnBlogsApi offline_access' }) }),
  ],
  ['sop', '/auth/sop', () => ({ startSandbox: () => startSopSandboxForApp(sopKeys), strategy: (s) => sopSandboxStrategy(s as RunningSopSandbox, sopKeys) })],
];

describe.each(PROVIDERS)('%s: configuration and transport faults keep the tokens', (_name, loginPath, options) => {
  it.each<[string, Fault]>([
    ['a 500', { status: 500 }],
    ['401 invalid_client', { status: 401, body: '{"error":"invalid_client","error_description":"Bad client credentials"}' }],
    ['a cut-off answer', { malformed: true }],
  ])('%s', async (_fault, fault) => {
    const s = await session(options(), loginPath);
    expect(s.before.refreshToken).toBeDefined();
    await s.t.expireToken(s.owner);
    s.t.sandbox.engine.injectFault('token', { ...fault, times: 100 });
    const res = await s.agent.get('/me').set('accept', 'application/json');
    expect([502, 503]).toContain(res.status);
    expect(res.body.error).toMatch(/^OAUTH_KEEPER_/);
    await expectKept(s);
  });
});
