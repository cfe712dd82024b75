import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import Redis from 'ioredis';
import { Passport } from 'passport';
import request from 'supertest';
import { ErrorCodes, oauthKeeper, RedisBackend, SopStrategy, TokenStore, type Keeper, type SopOptions, type TokenSet } from '../../src/index';
import type { RefreshEvents } from '../../src/lib/refresh';
import type { RunningSopSandbox, SopGatewayFault } from '../../src/sandbox/sop';
import { login, startLogin, uniquePrefix } from '../helpers/app';
import { rsaKeyPair, type RsaKeyPair } from '../helpers/keys';
import { sopSandboxOptions, startSopSandboxForApp } from '../helpers/providers';
import { startRedisServer, type RedisProcess } from '../helpers/redis-server';
import { until } from '../helpers/until';

/**
 * `app_auth_token` never expires, so a sop token set lost to a fault is lost for good.
 * Against a private redis-server, real express-session + connect-redis and the SOP
 * sandbox: every refresh refusal that is not about the refresh token — clock skew, our
 * own key or app_id, a missing parameter, an unsigned or badly signed answer, the
 * platform's own trouble, an HTTP 5xx — keeps the stored set byte for byte, answers with
 * a typed error naming the fix, and the next call works once the fault is gone. Only the
 * platform saying, signed, that the refresh token is no good deletes the set.
 */

type Agent = ReturnType<typeof request.agent>;

interface SopApp {
  url: string;
  sandbox: RunningSopSandbox;
  keeper: Keeper;
  store: TokenStore;
  redis: Redis;
  prefix: string;
  failures: Array<RefreshEvents['refresh:failure'][0]>;
  agent(): Agent;
  close(): Promise<void>;
}

interface Session {
  agent: Agent;
  owner: string;
  /** The raw Redis key of the session's sop token set. */
  key: string;
  /** Its raw (encrypted) value right after login. */
  raw: Buffer;
  set: TokenSet;
}

let redisServer: RedisProcess;
let appKeys: RsaKeyPair;
let stranger: RsaKeyPair;

beforeAll(async () => {
  redisServer = await startRedisServer();
  appKeys = rsaKeyPair();
  stranger = rsaKeyPair();
});

afterAll(async () => {
  await redisServer?.stop();
});

const open: SopApp[] = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close();
});

/** One retry of a transient failure, quick backoff: the retries are visible without slowing the suite. */
const REFRESH = { retryDelayMs: 5, maxRetries: 1, requestBudgetMs: 5000 };

async function startApp(strategyOptions: Partial<SopOptions> = {}): Promise<SopApp> {
  const sandbox = await startSopSandboxForApp(appKeys);
  const redis = new Redis({ host: '127.0.0.1', port: redisServer.port });
  const prefix = uniquePrefix('sop-faults');
  const store = new TokenStore({ backend: new RedisBackend({ client: redis }), encryptionKeys: [randomBytes(32)], prefix });
  const passport = new Passport();
  passport.serializeUser((user, done) => done(null, user));
  passport.deserializeUser((user, done) => done(null, user as Express.User));
  const strategy = new SopStrategy({ ...sopSandboxOptions(sandbox, appKeys), ...strategyOptions });
  const keeper = oauthKeeper({ strategies: [strategy], store, passport, refresh: REFRESH });
  const failures: SopApp['failures'] = [];
  keeper.events.on('refresh:failure', (event) => failures.push(event));

  const app = express();
  app.use(
    session({
      secret: 'sop-faults-secret',
      resave: false,
      saveUninitialized: false,
      store: new RedisStore({ client: redis, prefix: `${prefix}sess:` }),
      cookie: { httpOnly: true, sameSite: 'lax' },
    }),
  );
  app.use(passport.initialize());
  app.use(passport.session());
  app.use(keeper.middleware());
  app.use('/api/sop', keeper.ensureAuthorized('sop', { unauthorized: 'status' }), keeper.proxy('sop'));
  app.use(keeper.errorHandler());
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const running: SopApp = {
    url,
    sandbox,
    keeper,
    store,
    redis,
    prefix,
    failures,
    agent: () => request.agent(url),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await sandbox.close();
      await redis.quit();
    },
  };
  open.push(running);
  return running;
}

/** Logs a new browser in; finds its token set's Redis key as the one key that login added. */
async function loginSession(a: SopApp): Promise<Session> {
  const before = new Set(await a.redis.keys(`${a.prefix}tok:*`));
  const agent = a.agent();
  await login(agent, '/auth/sop');
  const added = (await a.redis.keys(`${a.prefix}tok:*`)).filter((key) => !before.has(key));
  expect(added).toHaveLength(1);
  const key = added[0]!;
  const owner = /\{(.+)\}/.exec(key)![1]!;
  const raw = (await a.redis.getBuffer(key))!;
  const set = (await a.store.get(owner, 'sop'))!.tokenSet;
  expect(set.expiresAt).toBeNull(); // permanent: no timer will ever refresh it
  return { agent, owner, key, raw, set };
}

/** The stored set is still there, not even rewritten, and decrypts to the set of the login. */
async function expectKept(a: SopApp, s: Session): Promise<void> {
  expect(await a.redis.exists(s.key)).toBe(1);
  expect((await a.redis.getBuffer(s.key))!.equals(s.raw)).toBe(true);
  expect((await a.store.get(s.owner, 'sop'))!.tokenSet).toEqual(s.set);
}

function businessCall(s: Session) {
  return s.agent.post('/api/sop/goods.get').set('accept', 'application/json').send({ goods_name: 'iphone6' });
}

/** Once the fault is gone, the kept refresh token works: the call refreshes, rotates and succeeds. */
async function expectRecovered(a: SopApp, s: Session): Promise<void> {
  a.sandbox.engine.clearFaults();
  const refreshes = a.sandbox.engine.counters.refresh;
  const res = await businessCall(s).expect(200);
  expect(res.body).toMatchObject({ code: '10000', name: 'iphone6' });
  expect(a.sandbox.engine.counters.refresh).toBe(refreshes + 1);
  const now = (await a.store.get(s.owner, 'sop'))!.tokenSet;
  expect(now.accessToken).not.toBe(s.set.accessToken);
  expect(now.refreshToken).not.toBe(s.set.refreshToken);
}

function refusal(code: string, subCode: string, subMsg: string): Record<string, unknown> {
  const msg: Record<string, string> = { '20000': 'Service Currently Unavailable', '40001': 'Missing Required Arguments', '40002': 'Invalid Arguments' };
  return { code, msg: msg[code] ?? 'Error', sub_code: subCode, sub_msg: subMsg };
}

const FORGED = 'forged-app-auth-token-0123456789';
const FORGED_SUCCESS = { code: '10000', msg: 'Success', app_auth_token: FORGED, app_refresh_token: `${FORGED}-r`, user_id: '1001', expires_in: -1, re_expires_in: -3 };

interface FaultCase {
  fault: SopGatewayFault;
  status: number;
  error: string;
  oauthError?: string;
  /** What the message must name (the fix). */
  names: RegExp;
  /** What it must not send the user to fix instead. */
  notNames?: RegExp;
  transient: boolean;
}

/** A refusal the gateway means for good: a 502 with the refusal's sub_code, naming its fix. */
function final(fault: SopGatewayFault, oauthError: string, names: RegExp, notNames?: RegExp): FaultCase {
  return { fault, status: 502, error: ErrorCodes.TOKEN_ENDPOINT_FAILED, oauthError, names, ...(notNames ? { notNames } : {}), transient: false };
}

/** An answer that cannot be trusted: a signature error pointing at platformPublicKey, nothing of it used. */
function untrusted(fault: SopGatewayFault): FaultCase {
  return { fault, status: 502, error: ErrorCodes.RESPONSE_SIGNATURE_INVALID, names: /platformPublicKey/, transient: false };
}

/** The platform's own trouble: retried, then a 503 to try again shortly. */
function transient(fault: SopGatewayFault): FaultCase {
  return { fault, status: 503, error: ErrorCodes.REFRESH_UNAVAILABLE, names: /try again/, transient: true };
}

const INVALID_SIGNATURE = refusal('40002', 'isv.invalid-signature', 'Invalid signature');

const NOT_ABOUT_THE_TOKEN: Array<[string, FaultCase]> = [
  ['clock skew: 40002 isv.invalid-timestamp', final({ node: refusal('40002', 'isv.invalid-timestamp', 'Invalid timestamp') }, 'isv.invalid-timestamp', /clock/)],
  ['our key: 40002 isv.invalid-signature', final({ node: INVALID_SIGNATURE }, 'isv.invalid-signature', /privateKey/, /platformPublicKey/)],
  ['our key, unsigned: 40002 isv.invalid-signature without sign', final({ node: INVALID_SIGNATURE, unsigned: true }, 'isv.invalid-signature', /privateKey/, /platformPublicKey/)],
  ['our app_id, unsigned: 40002 isv.invalid-app-id', final({ node: refusal('40002', 'isv.invalid-app-id', 'Invalid app_id'), unsigned: true }, 'isv.invalid-app-id', /clientID.*app_id/)],
  ['a missing parameter: 40001 isv.missing-version', final({ node: refusal('40001', 'isv.missing-version', 'Missing version') }, 'isv.missing-version', /parameter version/)],
  [
    'our request, per the auth service: invalid_request inside 10000',
    final({ node: { code: '10000', msg: 'Success', error: 'invalid_request', error_description: 'refresh_token is required' } }, 'invalid_request', /invalid_request/),
  ],
  ['an unsigned success carrying tokens', untrusted({ node: FORGED_SUCCESS, unsigned: true })],
  ['an unsigned invalid_grant (anyone could send it)', untrusted({ node: { code: '10000', msg: 'Success', error: 'invalid_grant' }, unsigned: true })],
  ['a badly signed success', untrusted({ node: FORGED_SUCCESS, badSignature: true })],
  ['a badly signed invalid_grant', untrusted({ node: { code: '10000', msg: 'Success', error: 'invalid_grant' }, badSignature: true })],
  ["the platform's trouble: 20000 isp.unknown-error", transient({ node: refusal('20000', 'isp.unknown-error', 'Service Currently Unavailable') })],
  ["the platform's trouble, unsigned: 20000 isp.service-not-available", transient({ node: refusal('20000', 'isp.service-not-available', 'Service not available'), unsigned: true })],
  ['HTTP 503 from the gateway', transient({ status: 503 })],
  ['HTTP 500 with an HTML page', transient({ status: 500, body: '<html>oops</html>' })],
];

describe('sop: an unsigned refusal is reported as what it says', () => {
  it('an unsigned 40002 isv.invalid-signature at login names the private key, not the platform key', async () => {
    const a = await startApp({ privateKey: stranger.privateKey });
    a.sandbox.settings.unsignedRefusals = true;
    const agent = a.agent();
    const res = await agent.get(await startLogin(agent, '/auth/sop')).set('accept', 'application/json').expect(502);
    // The sandbox really refused our signature, and really sent that unsigned.
    expect(a.sandbox.gatewayCounters.badSignatures).toBe(1);
    expect(JSON.parse(a.sandbox.lastGatewayResponse!)).not.toHaveProperty('sign');
    expect(res.body).toMatchObject({ error: ErrorCodes.TOKEN_ENDPOINT_FAILED, oauthError: 'isv.invalid-signature', provider: 'sop' });
    expect(res.body.message).toMatch(/privateKey/);
    expect(res.body.message).toMatch(/unsigned/);
    expect(res.body.message).not.toMatch(/platformPublicKey/);
    expect(await a.redis.keys(`${a.prefix}tok:*`)).toHaveLength(0);
  });

  it("an unsigned isv.invalid-timestamp at login names the server's clock", async () => {
    const a = await startApp();
    a.sandbox.settings.unsignedRefusals = true;
    a.sandbox.settings.timestampToleranceSeconds = -1; // every timestamp is off
    const agent = a.agent();
    const res = await agent.get(await startLogin(agent, '/auth/sop')).set('accept', 'application/json').expect(502);
    expect(res.body).toMatchObject({ error: ErrorCodes.TOKEN_ENDPOINT_FAILED, oauthError: 'isv.invalid-timestamp' });
    expect(res.body.message).toMatch(/clock/);
  });

  it('an unsigned refusal of a business call is a typed error naming the fix, not a node for the caller', async () => {
    const a = await startApp();
    const s = await loginSession(a);
    a.sandbox.injectGatewayFault('api', { node: INVALID_SIGNATURE, unsigned: true });
    const res = await businessCall(s).expect(502);
    expect(res.body).toMatchObject({ error: ErrorCodes.API_UPSTREAM_FAILED, oauthError: 'isv.invalid-signature', provider: 'sop' });
    expect(res.body.message).toMatch(/privateKey/);
    expect(res.text).not.toContain(s.set.accessToken);
    await expectKept(a, s);
    await businessCall(s).expect(200);
  });

  it('an unsigned success at login is still refused, and none of it is used', async () => {
    const a = await startApp();
    a.sandbox.injectGatewayFault('token', { node: FORGED_SUCCESS, unsigned: true });
    const agent = a.agent();
    const res = await agent.get(await startLogin(agent, '/auth/sop')).set('accept', 'application/json').expect(502);
    expect(res.body.error).toBe(ErrorCodes.RESPONSE_SIGNATURE_INVALID);
    expect(res.text).not.toContain(FORGED);
    expect(await a.redis.keys(`${a.prefix}tok:*`)).toHaveLength(0);
  });
});

describe('sop: a refresh refusal that is not about the refresh token keeps the permanent token', () => {
  it.each(NOT_ABOUT_THE_TOKEN)('%s', async (_name, c) => {
    const a = await startApp();
    const s = await loginSession(a);
    a.sandbox.expireAppAuthTokens(); // the gateway now answers 20001 aop.app-auth-token-time-out: a refresh is due
    a.sandbox.injectGatewayFault('token', { ...c.fault, times: 10 });

    const res = await businessCall(s).expect(c.status);
    expect(res.body).toMatchObject({ error: c.error, provider: 'sop' });
    if (c.oauthError !== undefined) expect(res.body.oauthError).toBe(c.oauthError);
    expect(res.body.message).toMatch(c.names);
    if (c.notNames) expect(res.body.message).not.toMatch(c.notNames);
    for (const secret of [s.set.accessToken, s.set.refreshToken!, FORGED]) expect(res.text).not.toContain(secret);
    // The keeper said so on its event: the refusal's own code, transient or not, retried or not.
    const code = c.error === ErrorCodes.REFRESH_UNAVAILABLE ? ErrorCodes.TOKEN_ENDPOINT_FAILED : c.error;
    expect(a.failures).toEqual([{ provider: 'sop', code, transient: c.transient, retries: c.transient ? REFRESH.maxRetries : 0, durationMs: expect.any(Number) }]);

    await expectKept(a, s);
    await expectRecovered(a, s);
  });

  it('a refusal that says the refresh token is invalid (invalid_grant, signed) deletes the set', async () => {
    const a = await startApp();
    const s = await loginSession(a);
    a.sandbox.engine.revoke(s.set.refreshToken!);
    a.sandbox.expireAppAuthTokens();
    const res = await businessCall(s).expect(401);
    expect(res.body).toMatchObject({ error: ErrorCodes.REAUTHORIZATION_REQUIRED, oauthError: 'invalid_grant' });
    expect(await a.redis.exists(s.key)).toBe(0);
    expect(await a.store.get(s.owner, 'sop')).toBeNull();
  });

  it('a refusal that says the refresh token expired (expired_token, signed) deletes the set', async () => {
    const a = await startApp();
    const s = await loginSession(a);
    a.sandbox.expireAppAuthTokens();
    a.sandbox.injectGatewayFault('token', { node: { code: '10000', msg: 'Success', error: 'expired_token', error_description: 'refresh token expired' } });
    const res = await businessCall(s).expect(401);
    expect(res.body).toMatchObject({ error: ErrorCodes.REAUTHORIZATION_REQUIRED, oauthError: 'expired_token' });
    expect(await a.redis.exists(s.key)).toBe(0);
  });
});

describe('sop: overlapping refreshes of many sessions under a fault', () => {
  it.each<[string, SopGatewayFault]>([
    ['an unsigned isv.invalid-signature', { node: INVALID_SIGNATURE, unsigned: true }],
    ['isv.invalid-timestamp', { node: refusal('40002', 'isv.invalid-timestamp', 'Invalid timestamp') }],
  ])('%s: every session keeps its set, and each works again afterwards', async (_name, fault) => {
    const a = await startApp();
    const sessions: Session[] = [];
    for (let i = 0; i < 4; i += 1) sessions.push(await loginSession(a));
    a.sandbox.expireAppAuthTokens();
    // Hold every refresh answer until all four refreshes are at the gateway at once.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    a.sandbox.injectGatewayFault('token', { ...fault, until: gate, times: sessions.length });
    // Two calls per session at once: one refresh per session (single-flight), four in all.
    const calls = sessions.flatMap((s) => [businessCall(s).then((r) => r), businessCall(s).then((r) => r)]);
    await until(() => a.sandbox.engine.pendingFaults('token') === 0, 'all four refreshes to reach the gateway');
    release();
    const answers = await Promise.all(calls);
    for (const res of answers) {
      expect(res.status).toBe(502);
      expect(res.body).toMatchObject({ error: ErrorCodes.TOKEN_ENDPOINT_FAILED, oauthError: fault.node!['sub_code'] });
    }
    expect(a.sandbox.engine.counters.refresh).toBe(0); // the faulted answers redeemed nothing
    for (const s of sessions) await expectKept(a, s);
    for (const s of sessions) await expectRecovered(a, s);
  });
});
