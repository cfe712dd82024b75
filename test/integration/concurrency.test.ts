import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import Redis from 'ioredis';
import { Passport } from 'passport';
import { DiStrategy, OAuthKeeperStrategy, oauthKeeper, RedisBackend, TokenStore, type AuthorizedRequest } from '../../src/index';
import type { CnblogsOptions } from '../../src/providers/cnblogs/index';
import {
  startCnblogsSandbox,
  startDiSandbox,
  startOAuth2Sandbox,
  startSopSandbox,
  type CnblogsSandboxUser,
  type RunningSandbox,
  type RunningSopSandbox,
  type SandboxUser,
} from '../../src/sandbox/index';
import { exampleProvider, testRedisPort, uniquePrefix } from '../helpers/app';
import { approveAs, CookieBrowser, deliverCallback, type Answer, type ResponseMode } from '../helpers/browser-flow';
import { gate } from '../helpers/proxy';
import { until } from '../helpers/until';
import { cnblogsSandboxStrategy, sopSandboxStrategy } from '../helpers/providers';

/**
 * Many people signing in at once, over two app instances sharing Redis, with the
 * provider's code exchange delayed by a random 0–500 ms so that every login's callback
 * overlaps others'. Each login must land on its own returnTo, and from then on each
 * session's token (req.oauthToken), its Passport user and its proxied API calls must be
 * its own user's — the sandbox's API echoes whose token called it. Then half the
 * sessions log out while the other half keep calling the API.
 *
 * Passport assigns a request's success/fail/redirect/error onto the strategy object it
 * runs; the keeper, and apps calling passport.authenticate with an instance or a name,
 * must each get a per-request object, or a slow login answers for another.
 */

const SESSIONS = 20;
const DELAY: [number, number] = [0, 500];

type Style = 'keeper' | 'instance' | 'name';

interface ProviderCase {
  label: string;
  /** The strategy's name: also its login path, callback path and proxy mount. */
  name: string;
  mode: ResponseMode;
  start(users: SandboxUser[]): Promise<RunningSandbox>;
  strategy(sandbox: RunningSandbox): OAuthKeeperStrategy<any, any>;
  /** A proxied call whose answer names the user whose token made it. */
  whoami: { method: 'GET' | 'POST'; path: string; json?: unknown; user(body: any): unknown };
}

const sopKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });

function cnblogsCase(mode: ResponseMode, options: Partial<CnblogsOptions>): ProviderCase {
  return {
    label: `cnblogs (${mode})`,
    name: 'cnblogs',
    mode,
    start: (users) =>
      startCnblogsSandbox({
        codeExchangeDelayMs: DELAY,
        users: users.map(
          (u, i): CnblogsSandboxUser => ({ ...u, blogApp: `blog-${i}`, blogId: 1000 + i, spaceUserId: 2000 + i, avatar: `https://pic.example/${i}.png` }),
        ),
      }),
    strategy: (s) => cnblogsSandboxStrategy(s.url, options),
    whoami: { method: 'GET', path: '/users', user: (body) => body.UserId },
  };
}

const CASES: ProviderCase[] = [
  {
    label: 'defineProvider (example)',
    name: 'example',
    mode: 'query',
    start: (users) => startOAuth2Sandbox({ users, codeExchangeDelayMs: DELAY }),
    strategy: (s) =>
      new OAuthKeeperStrategy(exampleProvider, {
        clientID: 'sandbox-client',
        clientSecret: 'sandbox-secret',
        callbackURL: '/auth/example/callback',
        baseURL: s.url,
      }),
    whoami: { method: 'GET', path: '/whoami', user: (body) => body.user },
  },
  {
    label: 'di',
    name: 'di',
    mode: 'query',
    start: (users) => startDiSandbox({ users, codeExchangeDelayMs: DELAY }),
    strategy: (s) => new DiStrategy({ clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/di/callback', baseURL: s.url }),
    whoami: { method: 'GET', path: '/sandbox/whoami', user: (body) => body.context?.records?.[0]?.userId },
  },
  cnblogsCase('query', {}),
  cnblogsCase('fragment', { responseType: 'code id_token' }),
  cnblogsCase('form_post', { responseType: 'code id_token', responseMode: 'form_post' }),
  {
    label: 'sop',
    name: 'sop',
    mode: 'query',
    start: (users) =>
      startSopSandbox({ users, codeExchangeDelayMs: DELAY, apps: [{ appId: 'app-1', publicKey: sopKeys.publicKey }] }),
    strategy: (s) => sopSandboxStrategy(s as RunningSopSandbox, sopKeys),
    whoami: { method: 'POST', path: '/user.info.get', json: {}, user: (body) => body.user_id },
  },
];

function users(count: number): SandboxUser[] {
  return Array.from({ length: count }, (_, i) => ({
    username: `user${i}`,
    password: `secret-${i}`,
    id: `${String(i + 1).padStart(4, '0')}-${randomBytes(3).toString('hex')}`,
    name: `User ${i}`,
  }));
}

interface Instance {
  url: string;
  close(): Promise<void>;
}

/**
 * One app instance: its own Redis client, token store, Passport, strategy and keeper,
 * sharing the session and token keys (prefix, encryption key) with the other instances.
 */
async function startInstance(c: ProviderCase, sandbox: RunningSandbox, style: Style, shared: { prefix: string; key: Buffer }): Promise<Instance> {
  const redis = new Redis({ port: testRedisPort(), host: '127.0.0.1' });
  const store = new TokenStore({ backend: new RedisBackend({ client: redis }), encryptionKeys: [shared.key], prefix: shared.prefix });
  const passport = new Passport();
  passport.serializeUser((user, done) => done(null, user));
  passport.deserializeUser((user, done) => done(null, user as Express.User));
  const strategy = c.strategy(sandbox);
  if (style === 'name') passport.use(strategy);
  const keeper = oauthKeeper({ strategies: [strategy], store, passport, routes: style === 'keeper' });
  const callbackPath = new URL(strategy.options.callbackURL, 'http://x.invalid').pathname;

  const app = express();
  app.use(
    session({
      secret: 'concurrency-secret',
      resave: false,
      saveUninitialized: false,
      store: new RedisStore({ client: redis, prefix: `${shared.prefix}sess:` }),
      cookie: { httpOnly: true, sameSite: 'lax' },
    }),
  );
  app.use(passport.initialize());
  app.use(passport.session());
  app.use(keeper.middleware());
  if (style !== 'keeper') {
    // What a passport-oauth2 app writes, with the strategy given as an instance or by name.
    const target = style === 'name' ? c.name : strategy;
    app.get(`/auth/${c.name}`, passport.authenticate(target));
    app.get(callbackPath, passport.authenticate(target, { failureRedirect: '/failed', keepSessionInfo: true }), keeper.completeLogin());
  }
  app.get('/landing/:n', (req, res) => {
    res.json({ landing: req.params.n });
  });
  app.get('/whoami', keeper.ensureAuthorized(c.name, { unauthorized: 'status' }), (req, res) => {
    const { oauthToken } = req as AuthorizedRequest;
    res.json({
      tokenUser: sandbox.engine.verifyAccessToken(oauthToken.accessToken)?.userId ?? null,
      passportUser: (req.user as { id?: string } | undefined)?.id ?? null,
    });
  });
  app.use(`/api/${c.name}`, keeper.ensureAuthorized(c.name, { unauthorized: 'status' }), keeper.proxy(c.name));
  app.post('/logout', keeper.logout());

  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await redis.quit();
    },
  };
}

interface Harness {
  sandbox: RunningSandbox;
  instances: [Instance, Instance];
  people: SandboxUser[];
}

async function setup(c: ProviderCase, style: Style): Promise<Harness> {
  const people = users(SESSIONS);
  const sandbox = await c.start(people);
  const shared = { prefix: uniquePrefix('conc'), key: randomBytes(32) };
  const instances: [Instance, Instance] = [await startInstance(c, sandbox, style, shared), await startInstance(c, sandbox, style, shared)];
  return { sandbox, instances, people };
}

async function teardown(h: Harness): Promise<void> {
  await Promise.all(h.instances.map((i) => i.close()));
  await h.sandbox.close();
}

interface Signed {
  browser: CookieBrowser;
  user: SandboxUser;
  n: number;
}

/** Session n starts a login at `instance` (returnTo /landing/n) and approves it at the provider as its own user. */
async function authorizeAt(c: ProviderCase, h: Harness, n: number, instance: Instance): Promise<Signed & { answer: Answer }> {
  const browser = new CookieBrowser();
  const user = h.people[n]!;
  const start = await browser.visit(`${instance.url}/auth/${c.name}?returnTo=${encodeURIComponent(`/landing/${n}`)}`, { headers: { accept: 'text/html' } });
  if (start.status !== 302 || start.location === undefined) throw new Error(`login ${n}: ${start.status} ${start.text.slice(0, 200)}`);
  return { browser, user, n, answer: await approveAs(start.location, user) };
}

/** Session n logs in as its own user: login on one instance, callback on the other. */
async function signIn(c: ProviderCase, h: Harness, n: number): Promise<{ signed: Signed; landed: string | undefined; status: number }> {
  const { answer, ...signed } = await authorizeAt(c, h, n, h.instances[n % 2]!);
  const done = await deliverCallback(signed.browser, answer, c.mode, h.instances[(n + 1) % 2]!.url);
  return { signed, landed: done.location, status: done.status };
}

async function whoami(c: ProviderCase, instance: Instance, s: Signed): Promise<{ tokenUser: unknown; passportUser: unknown; apiUser: unknown; statuses: number[] }> {
  const [me, api] = await Promise.all([
    s.browser.visit(`${instance.url}/whoami`),
    s.browser.visit(`${instance.url}/api/${c.name}${c.whoami.path}`, { method: c.whoami.method, ...(c.whoami.json === undefined ? {} : { json: c.whoami.json }) }),
  ]);
  const meBody = me.status === 200 ? JSON.parse(me.text) : {};
  const apiBody = api.status === 200 ? JSON.parse(api.text) : {};
  return { tokenUser: meBody.tokenUser, passportUser: meBody.passportUser, apiUser: c.whoami.user(apiBody), statuses: [me.status, api.status] };
}

async function runConcurrentLogins(c: ProviderCase, h: Harness): Promise<Signed[]> {
  const results = await Promise.all(Array.from({ length: SESSIONS }, (_, n) => signIn(c, h, n)));
  // Every login ended in the app's 303 to its own returnTo.
  expect(results.map((r) => [r.status, r.landed])).toEqual(results.map((_, n) => [303, `/landing/${n}`]));
  // Each code was exchanged once, and the exchanges really overlapped.
  expect(h.sandbox.engine.counters.authorizationCode).toBe(SESSIONS);
  expect(h.sandbox.engine.peakConcurrentCodeExchanges).toBeGreaterThanOrEqual(5);
  const signed = results.map((r) => r.signed);

  // From both instances, concurrently: each session's token and API calls are its own user's.
  const seen = await Promise.all(signed.flatMap((s) => h.instances.map((instance) => whoami(c, instance, s))));
  const expected = signed.flatMap((s) =>
    h.instances.map(() => ({ tokenUser: s.user.id, passportUser: c.name === 'di' ? '' : s.user.id, apiUser: s.user.id, statuses: [200, 200] })),
  );
  expect(seen).toEqual(expected);
  return signed;
}

async function runConcurrentLogouts(c: ProviderCase, h: Harness, signed: Signed[]): Promise<void> {
  const leaving = signed.filter((s) => s.n % 2 === 0);
  const staying = signed.filter((s) => s.n % 2 === 1);
  const [logouts, calls] = await Promise.all([
    Promise.all(leaving.map((s) => s.browser.visit(`${h.instances[(s.n + 1) % 2]!.url}/logout`, { method: 'POST' }))),
    Promise.all(staying.map((s) => whoami(c, h.instances[s.n % 2]!, s))),
  ]);
  expect(logouts.map((r) => r.status)).toEqual(leaving.map(() => 204));
  expect(calls.map((r) => r.apiUser)).toEqual(staying.map((s) => s.user.id));
  for (const s of leaving) expect(s.browser.hasCookie('connect.sid')).toBe(false);
  // Logged out: no token on either instance. The others still have theirs.
  const after = await Promise.all(signed.map((s) => whoami(c, h.instances[s.n % 2]!, s)));
  expect(after.map((r) => r.statuses)).toEqual(signed.map((s) => (s.n % 2 === 0 ? [401, 401] : [200, 200])));
  expect(after.map((r) => r.apiUser)).toEqual(signed.map((s) => (s.n % 2 === 0 ? undefined : s.user.id)));
}

describe.each(CASES)(`$label: ${SESSIONS} concurrent logins over two instances`, (c) => {
  let h: Harness | undefined;
  afterEach(async () => {
    if (h) await teardown(h);
    h = undefined;
  });

  it('through the keeper: each lands on its own returnTo with its own user, token and API calls; concurrent logouts end only their own session', async () => {
    h = await setup(c, 'keeper');
    const signed = await runConcurrentLogins(c, h);
    await runConcurrentLogouts(c, h, signed);
  });

  // form_post and fragment answers need the keeper's relay page (plain passport.authenticate cannot read
  // them), so only the query-mode providers are also mounted the plain passport-oauth2 way.
  if (c.mode !== 'query') return;
  it.each(['instance', 'name'] as const)('with plain passport.authenticate(%s) and keeper.completeLogin(): the same', async (style) => {
    h = await setup(c, style);
    const signed = await runConcurrentLogins(c, h);
    await runConcurrentLogouts(c, h, signed);
  });
});

describe('the identity swap: a victim\'s slow code exchange, an attacker\'s callback arriving meanwhile', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    if (h) await teardown(h);
    h = undefined;
  });

  it.each(['keeper', 'instance', 'name'] as const)('%s: each session ends with its own user, token and returnTo', async (style) => {
    const c = CASES[0]!;
    h = await setup(c, style);
    const [app] = h.instances;
    const victim = await authorizeAt(c, h, 0, app);
    const attacker = await authorizeAt(c, h, 1, app);
    // The victim's code exchange is held at the provider until the attacker's login has completed.
    const hold = gate();
    h.sandbox.engine.injectFault('token', { until: hold.promise });
    const victimDone = deliverCallback(victim.browser, victim.answer, 'query', app.url);
    await until(() => h!.sandbox.engine.pendingFaults('token') === 0, "the victim's code exchange at the provider");
    const attackerDone = await deliverCallback(attacker.browser, attacker.answer, 'query', app.url);
    expect([attackerDone.status, attackerDone.location]).toEqual([303, '/landing/1']);
    hold.open();
    const victimLanded = await victimDone;
    expect([victimLanded.status, victimLanded.location]).toEqual([303, '/landing/0']);

    const [victimSees, attackerSees] = await Promise.all([whoami(c, app, victim), whoami(c, app, attacker)]);
    expect(victimSees).toEqual({ tokenUser: victim.user.id, passportUser: victim.user.id, apiUser: victim.user.id, statuses: [200, 200] });
    expect(attackerSees).toEqual({ tokenUser: attacker.user.id, passportUser: attacker.user.id, apiUser: attacker.user.id, statuses: [200, 200] });
  });
});
