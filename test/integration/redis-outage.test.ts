import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express, { type ErrorRequestHandler } from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import Redis from 'ioredis';
import { Passport } from 'passport';
import request from 'supertest';
import {
  ErrorCodes,
  guardSessionStore,
  OAuthKeeperStrategy,
  oauthKeeper,
  RedisBackend,
  TokenStore,
  type StoredTokenSet,
} from '../../src/index';
import { startOAuth2Sandbox, type RunningSandbox } from '../../src/sandbox/index';
import { exampleProvider, login, startLogin, uniquePrefix } from '../helpers/app';
import { cookieRoute, sessionCookie } from '../helpers/proxy';
import { durableRedisArgs, killProcess, pauseProcess, processState, resumeProcess, startRedisServerOn } from '../helpers/redis-restart';
import { freePort, type RedisProcess } from '../helpers/redis-server';
import { until } from '../helpers/until';

/**
 * Real processes: a private redis-server is paused (SIGSTOP) or killed (SIGKILL) while the
 * app is under load. Every request must still be answered — 503, Retry-After, typed JSON —
 * and once Redis is back every session works again with the same cookie and tokens.
 */

/** The library's own bound (session-store guard and token store), below ioredis's commandTimeout. */
const STORE_TIMEOUT_MS = 500;
const RETRY_AFTER_SECONDS = 2;
/** Only a hang detector: an answer that takes this long counts as none. Not a timing assertion. */
const HANG_MS = 15_000;
const SESSIONS = 10;

// ---------------------------------------------------------------------------
// the app
// ---------------------------------------------------------------------------

/** The recommended client settings: fail fast, reconnect forever, never print errors. */
function outageRedis(port: number): { client: Redis; errors: () => number; ready: Promise<void> } {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    commandTimeout: 1000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(times * 100, 1000),
    connectTimeout: 2000,
  });
  let errors = 0;
  client.on('error', () => {
    errors += 1;
  });
  // With the offline queue off, nothing may be sent before 'ready'.
  const ready = new Promise<void>((resolve) => client.once('ready', () => resolve()));
  return { client, errors: () => errors, ready };
}

interface OutageApp {
  url: string;
  /** The ioredis client holding sessions (and tokens, unless a separate token port was given). */
  sessionRedis: Redis;
  tokenRedis: Redis;
  store: TokenStore;
  sandbox: RunningSandbox;
  /** Errors that got past keeper.errorHandler() (anything not an OAuthKeeperError). */
  unexpected: unknown[];
  redisErrors: () => number;
  close(): Promise<void>;
}

async function startOutageApp(ports: { session: number; token?: number }): Promise<OutageApp> {
  const sandbox = await startOAuth2Sandbox({ autoApprove: true });
  const sessionClient = outageRedis(ports.session);
  const tokenClient = ports.token === undefined ? sessionClient : outageRedis(ports.token);
  await Promise.all([sessionClient.ready, tokenClient.ready]);

  const prefix = uniquePrefix('outage');
  const store = new TokenStore({
    backend: new RedisBackend({ client: tokenClient.client }),
    encryptionKeys: [randomBytes(32)],
    prefix,
    timeoutMs: STORE_TIMEOUT_MS,
    retryAfterSeconds: RETRY_AFTER_SECONDS,
  });
  const passport = new Passport();
  passport.serializeUser((user, done) => done(null, user));
  passport.deserializeUser((user, done) => done(null, user as Express.User));
  const strategy = new OAuthKeeperStrategy(exampleProvider, {
    clientID: 'sandbox-client',
    clientSecret: 'sandbox-secret',
    callbackURL: '/auth/example/callback',
    baseURL: sandbox.url,
  });
  const keeper = oauthKeeper({ strategies: [strategy], store, passport });

  const app = express();
  app.use(
    session({
      secret: 'outage-secret',
      resave: false,
      saveUninitialized: false,
      store: guardSessionStore(new RedisStore({ client: sessionClient.client, prefix: `${prefix}sess:` }), {
        timeoutMs: STORE_TIMEOUT_MS,
        retryAfterSeconds: RETRY_AFTER_SECONDS,
      }),
      cookie: { httpOnly: true, sameSite: 'lax' },
    }),
  );
  app.use(passport.initialize());
  app.use(passport.session());
  app.use(keeper.middleware());
  cookieRoute(app);
  app.get('/__owner', (req, res) => {
    res.json({ owner: req.session.oauthKeeper?.owner ?? null });
  });
  app.get('/me', keeper.ensureAuthorized('example', { unauthorized: 'status' }), (req, res) => {
    res.json({ provider: req.oauthToken?.provider, user: req.user ?? null });
  });
  app.use('/api/example', keeper.ensureAuthorized('example', { unauthorized: 'status' }), keeper.proxy('example'));
  app.post('/logout', keeper.logout());
  app.use(keeper.errorHandler());
  const unexpected: unknown[] = [];
  const record: ErrorRequestHandler = (error, _req, _res, next) => {
    unexpected.push(error);
    next(error);
  };
  app.use(record);

  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const clients = [...new Set([sessionClient.client, tokenClient.client])];
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sessionRedis: sessionClient.client,
    tokenRedis: tokenClient.client,
    store,
    sandbox,
    unexpected,
    redisErrors: () => sessionClient.errors() + (tokenClient === sessionClient ? 0 : tokenClient.errors()),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await sandbox.close();
      // disconnect, not quit: the server may be gone, and quit would wait for it.
      for (const client of clients) client.disconnect();
    },
  };
}

// ---------------------------------------------------------------------------
// sessions and requests
// ---------------------------------------------------------------------------

interface LoggedIn {
  /** The Cookie header the browser sends: the same one before, during and after the outage. */
  cookie: string;
  owner: string;
  me: unknown;
}

async function logInSessions(app: OutageApp, count: number): Promise<LoggedIn[]> {
  const sessions: LoggedIn[] = [];
  for (let i = 0; i < count; i += 1) {
    const agent = request.agent(app.url);
    await login(agent);
    const cookie = await sessionCookie(agent);
    const owner = (await agent.get('/__owner').expect(200)).body.owner as string;
    const me = (await agent.get('/me').set('accept', 'application/json').expect(200)).body as unknown;
    expect(owner).toEqual(expect.any(String));
    sessions.push({ cookie, owner, me });
  }
  return sessions;
}

interface Planned {
  /** Names the request in assertion output. */
  label: string;
  path: string;
  method?: 'GET' | 'POST';
  cookie?: string;
}

interface Answer {
  label: string;
  status: number | string;
  retryAfter: string | null;
  body: Record<string, unknown> | string;
}

/** Sends one request with fetch; a hang or a dropped connection becomes an answer that fails the comparison. */
async function send(url: string, planned: Planned): Promise<Answer> {
  try {
    const res = await fetch(url + planned.path, {
      method: planned.method ?? 'GET',
      headers: { accept: 'application/json', ...(planned.cookie ? { cookie: planned.cookie } : {}) },
      redirect: 'manual',
      signal: AbortSignal.timeout(HANG_MS),
    });
    const text = await res.text();
    let body: Record<string, unknown> | string = text;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // not JSON: kept as text, which fails the comparison and shows what came back
    }
    return { label: planned.label, status: res.status, retryAfter: res.headers.get('retry-after'), body };
  } catch (error) {
    const name = (error as Error).name;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const status = name === 'TimeoutError' ? `no answer within ${HANG_MS} ms` : `no answer: ${String(error)}${cause ? ` (${cause.code ?? ''} ${cause.message ?? ''})` : ''}`;
    return { label: planned.label, status, retryAfter: null, body: '' };
  }
}

/**
 * A stream of requests over the sessions (`workers` at a time, back to back) until `stop()`.
 * Each answer carries the phase its request was sent in: `before` the signal, while it was
 * `changing` (sent, not yet confirmed), or `during` the outage (process stopped or gone).
 */
function stream(url: string, sessions: LoggedIn[], workers: number) {
  type Phase = 'before' | 'changing' | 'during';
  let phase = 'before' as Phase;
  let stopped = false;
  let sent = 0;
  const answers: Array<Answer & { phase: Phase; session: number }> = [];
  const loops = Array.from({ length: workers }, async (_, w) => {
    while (!stopped) {
      const i = sent % sessions.length;
      const path = sent % 2 === 0 ? '/me' : `/api/example/whoami`;
      sent += 1;
      const at = phase;
      const answer = await send(url, { label: `worker ${w}: session ${i}: GET ${path}`, path, cookie: sessions[i]!.cookie });
      answers.push({ ...answer, phase: at, session: i });
    }
  });
  return {
    answers,
    outageBeginning: () => (phase = 'changing'),
    outageBegun: () => (phase = 'during'),
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** ~50 concurrent requests over the sessions: guarded /me, proxied API calls, and login starts. */
function outageLoad(sessions: LoggedIn[]): Planned[] {
  const planned: Planned[] = [];
  sessions.forEach((s, i) => {
    for (let k = 0; k < 3; k += 1) planned.push({ label: `session ${i}: GET /me #${k}`, path: '/me', cookie: s.cookie });
    for (let k = 0; k < 2; k += 1) {
      planned.push({ label: `session ${i}: GET /api/example/things #${k}`, path: `/api/example/things?n=${i}-${k}`, cookie: s.cookie });
    }
  });
  planned.push({ label: 'login start without a session: GET /auth/example', path: '/auth/example' });
  planned.push({ label: 'login start in session 0: GET /auth/example', path: '/auth/example', cookie: sessions[0]!.cookie });
  return planned;
}

function fire(url: string, planned: Planned[]): Promise<Answer[]> {
  return Promise.all(planned.map((p) => send(url, p)));
}

/** What every request during an outage must get: 503, Retry-After, the typed JSON error. */
function expectAllUnavailable(answers: Answer[]): void {
  const seen = answers.map((a) => ({
    label: a.label,
    status: a.status,
    retryAfter: a.retryAfter,
    error: typeof a.body === 'string' ? a.body.slice(0, 200) : a.body['error'],
    message: typeof a.body === 'string' ? 'not JSON' : typeof a.body['message'],
  }));
  expect(seen).toEqual(
    answers.map((a) => ({
      label: a.label,
      status: 503,
      retryAfter: String(RETRY_AFTER_SECONDS),
      error: ErrorCodes.STORE_UNAVAILABLE,
      message: 'string',
    })),
  );
}

/** Every session answers 200 from /me (same user as at login) and through the proxy, with its old cookie. */
async function expectAllWorking(app: OutageApp, sessions: LoggedIn[]): Promise<void> {
  const planned: Planned[] = sessions.flatMap((s, i) => [
    { label: `session ${i}: GET /me`, path: '/me', cookie: s.cookie },
    { label: `session ${i}: GET /api/example/whoami`, path: '/api/example/whoami', cookie: s.cookie },
  ]);
  const answers = await fire(app.url, planned);
  const seen = answers.map((a) => ({ label: a.label, status: a.status, body: a.body }));
  expect(seen).toEqual(
    sessions.flatMap((s, i) => [
      { label: `session ${i}: GET /me`, status: 200, body: s.me },
      {
        label: `session ${i}: GET /api/example/whoami`,
        status: 200,
        body: expect.objectContaining({ ok: true, path: '/api/whoami', user: (s.me as { user: { id: string } }).user.id }),
      },
    ]),
  );
}

async function readTokenSets(app: OutageApp, sessions: LoggedIn[]): Promise<Array<StoredTokenSet | null>> {
  return Promise.all(sessions.map((s) => app.store.get(s.owner, 'example')));
}

/** How many times the provider saw a login: unchanged means nobody logged in again. */
function loginCounters(app: OutageApp): { authorize: number; authorizationCode: number } {
  const { authorize, authorizationCode } = app.sandbox.engine.counters;
  return { authorize, authorizationCode };
}

// ---------------------------------------------------------------------------
// the tests
// ---------------------------------------------------------------------------

describe('Redis outage under load: fast typed 503, then recovery without a new login', () => {
  const redisProcesses: RedisProcess[] = [];
  const dirs: string[] = [];
  let app: OutageApp | undefined;

  async function startRedis(): Promise<RedisProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'oauth-keeper-outage-'));
    dirs.push(dir);
    const redis = await startRedisServerOn(await freePort(), durableRedisArgs(dir));
    redisProcesses.push(redis);
    return redis;
  }

  afterEach(async () => {
    // Never leave a stopped redis-server behind, whatever failed above.
    for (const redis of redisProcesses) {
      const state = redis.process.pid === undefined ? undefined : processState(redis.process.pid);
      if (state === 'T' || state === 't') redis.process.kill('SIGCONT');
    }
    try {
      await app?.close();
    } finally {
      app = undefined;
      await Promise.all(redisProcesses.splice(0).map((redis) => killProcess(redis.process)));
      for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('paused (SIGSTOP): every one of ~50 concurrent requests gets a typed 503 with Retry-After; after SIGCONT the same cookies work', async () => {
    const redis = await startRedis();
    app = await startOutageApp({ session: redis.port });
    const sessions = await logInSessions(app, SESSIONS);
    const logins = loginCounters(app);

    await pauseProcess(redis.process);
    let answers: Answer[];
    try {
      answers = await fire(app.url, outageLoad(sessions));
    } finally {
      await resumeProcess(redis.process);
    }
    expectAllUnavailable(answers);
    expect(answers.length).toBeGreaterThanOrEqual(50);

    // The client's connection survived the pause: its queue drains once Redis runs again.
    await expect(app.sessionRedis.ping()).resolves.toBe('PONG');
    await expectAllWorking(app, sessions);
    expect(loginCounters(app)).toEqual(logins);
    expect(app.unexpected).toEqual([]);
  });

  it('killed (SIGKILL): requests during the outage get a typed 503; after a restart on the same port and data the same cookies and tokens work', async () => {
    const redis = await startRedis();
    const dir = dirs[dirs.length - 1]!;
    app = await startOutageApp({ session: redis.port });
    const sessions = await logInSessions(app, SESSIONS);
    const before = await readTokenSets(app, sessions);
    expect(before.every((set) => set !== null)).toBe(true);
    const logins = loginCounters(app);

    await killProcess(redis.process);
    const client = app.sessionRedis;
    // At once, whether or not the client has noticed yet; then again once it has.
    expectAllUnavailable(await fire(app.url, outageLoad(sessions)));
    await until(() => client.status !== 'ready', "the app's Redis client to notice the lost connection");
    expectAllUnavailable(await fire(app.url, outageLoad(sessions)));

    const reconnected = new Promise<void>((resolve) => client.once('ready', () => resolve()));
    const restarted = await startRedisServerOn(redis.port, durableRedisArgs(dir));
    redisProcesses.push(restarted);
    await reconnected;

    expect(await readTokenSets(app, sessions)).toEqual(before);
    await expectAllWorking(app, sessions);
    expect(loginCounters(app)).toEqual(logins);
    expect(app.unexpected).toEqual([]);
  });

  it('paused: the stored token sets are not deleted or changed, not even by a logout asked during the outage', async () => {
    const redis = await startRedis();
    app = await startOutageApp({ session: redis.port });
    const sessions = await logInSessions(app, SESSIONS);
    const before = await readTokenSets(app, sessions);
    expect(before.every((set) => set !== null)).toBe(true);

    const load = [
      ...outageLoad(sessions),
      ...sessions.slice(0, 3).map((s, i): Planned => ({ label: `session ${i}: POST /logout`, path: '/logout', method: 'POST', cookie: s.cookie })),
    ];
    await pauseProcess(redis.process);
    let answers: Answer[];
    try {
      answers = await fire(app.url, load);
    } finally {
      await resumeProcess(redis.process);
    }
    expectAllUnavailable(answers);

    // Whatever the timed-out commands did once Redis ran again has landed before this read.
    await expect(app.sessionRedis.ping()).resolves.toBe('PONG');
    expect(await readTokenSets(app, sessions)).toEqual(before);
    await expectAllWorking(app, sessions);
    expect(app.unexpected).toEqual([]);
  });

  it('token store paused while sessions stay up: the guard, the proxy and the login callback answer the typed 503; nothing is lost', async () => {
    const sessionRedis = await startRedis();
    const tokenRedis = await startRedis();
    app = await startOutageApp({ session: sessionRedis.port, token: tokenRedis.port });
    const sessions = await logInSessions(app, SESSIONS);
    const before = await readTokenSets(app, sessions);
    expect(before.every((set) => set !== null)).toBe(true);

    // A login begun before the outage, to finish during it: its tokens cannot be kept.
    const newcomer = request.agent(app.url);
    const callback = await startLogin(newcomer);
    const newcomerCookie = await sessionCookie(newcomer);

    await pauseProcess(tokenRedis.process);
    let answers: Answer[];
    try {
      const planned = outageLoad(sessions).filter((p) => !p.path.startsWith('/auth/'));
      planned.push({ label: 'login callback: GET /auth/example/callback', path: callback, cookie: newcomerCookie });
      answers = await fire(app.url, planned);
    } finally {
      await resumeProcess(tokenRedis.process);
    }
    expectAllUnavailable(answers);

    await expect(app.tokenRedis.ping()).resolves.toBe('PONG');
    expect(await readTokenSets(app, sessions)).toEqual(before);
    await expectAllWorking(app, sessions);
    expect(app.unexpected).toEqual([]);
  });
  it.each(['SIGSTOP', 'SIGKILL'] as const)(
    '%s in the middle of a stream of requests: each one answered, with its 200 or a typed 503 (after the outage began: 503), no connection torn down; then all recover',
    async (signal) => {
      const redis = await startRedis();
      const dir = dirs[dirs.length - 1]!;
      app = await startOutageApp({ session: redis.port });
      const sessions = await logInSessions(app, SESSIONS);
      const logins = loginCounters(app);
      const before = await readTokenSets(app, sessions);

      // Requests are in flight at every stage of a request when the signal lands.
      const load = stream(app.url, sessions, 8);
      try {
        await until(() => load.answers.length >= 40, 'answers before the outage');
        load.outageBeginning();
        if (signal === 'SIGSTOP') await pauseProcess(redis.process);
        else await killProcess(redis.process);
        load.outageBegun();
        await until(() => load.answers.filter((a) => a.phase === 'during').length >= 24, 'answers during the outage');
      } finally {
        await load.stop();
        if (signal === 'SIGSTOP') await resumeProcess(redis.process);
      }

      if (signal === 'SIGKILL') {
        const reconnected = new Promise<void>((resolve) => app!.sessionRedis.once('ready', () => resolve()));
        redisProcesses.push(await startRedisServerOn(redis.port, durableRedisArgs(dir)));
        await reconnected;
      } else {
        await expect(app.sessionRedis.ping()).resolves.toBe('PONG');
      }
      expect(await readTokenSets(app, sessions)).toEqual(before);
      await expectAllWorking(app, sessions);
      expect(loginCounters(app)).toEqual(logins);
      expect(load.answers.filter((a) => a.phase === 'before' && a.status === 200).length).toBeGreaterThan(0);

      const typed503 = (a: Answer) =>
        a.status === 503 && a.retryAfter === String(RETRY_AFTER_SECONDS) && typeof a.body !== 'string' && a.body['error'] === ErrorCodes.STORE_UNAVAILABLE;
      const correct200 = (a: Answer & { session: number }) => {
        if (a.status !== 200 || typeof a.body === 'string') return false;
        const me = sessions[a.session]!.me as { user: { id: string } };
        return a.label.endsWith('/me') ? JSON.stringify(a.body) === JSON.stringify(me) : a.body['ok'] === true && a.body['user'] === me.user.id;
      };
      const brief = (a: Answer & { phase: string }) => ({ label: a.label, phase: a.phase, status: a.status });
      // One comparison, so that a failure shows every kind of problem at once.
      expect({
        answeredWrongly: load.answers.filter((a) => !correct200(a) && !typed503(a)).map(brief),
        notA503AfterTheOutageBegan: load.answers.filter((a) => a.phase === 'during' && !typed503(a)).map(brief),
        // An error that reaches Express's final handler after the answer was sent makes it destroy the socket.
        errorsPastTheErrorHandler: app.unexpected.map((e) => (e instanceof Error ? e.message : String(e))),
      }).toEqual({ answeredWrongly: [], notA503AfterTheOutageBegan: [], errorsPastTheErrorHandler: [] });
    },
  );
});
