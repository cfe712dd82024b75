import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import Redis, { type Cluster } from 'ioredis';
import type { RedisCluster } from './redis-cluster';
import { Passport } from 'passport';
import request from 'supertest';
import {
  defineProvider,
  MemoryBackend,
  OAuthKeeperStrategy,
  oauthKeeper,
  RedisBackend,
  TokenStore,
  type Keeper,
  type KeeperOptions,
  type ProviderOptions,
  type TokenStoreBackend,
} from '../../src/index';
import { startOAuth2Sandbox, type OAuth2SandboxOptions, type RunningSandbox } from '../../src/sandbox/index';

export function testRedisPort(): number {
  const port = Number(process.env['OAUTH_KEEPER_TEST_REDIS_PORT']);
  if (!port) throw new Error('OAUTH_KEEPER_TEST_REDIS_PORT is unset: run the tests through jest (globalSetup starts redis-server).');
  return port;
}

export function newRedis(): Redis {
  return new Redis({ port: testRedisPort(), host: '127.0.0.1' });
}

export function uniquePrefix(label: string): string {
  return `t-${label}-${randomBytes(4).toString('hex')}:`;
}

export interface ExampleOptions extends ProviderOptions {
  baseURL: string;
}

/** A standard provider pointed at a running OAuth2 sandbox through a base URL option. */
export const exampleProvider = defineProvider<ExampleOptions>({
  name: 'example',
  authorizationURL: (o) => `${o.baseURL}/authorize`,
  tokenURL: (o) => `${o.baseURL}/token`,
  revocationURL: (o) => `${o.baseURL}/revoke`,
  userInfoURL: (o) => `${o.baseURL}/userinfo`,
  scope: ['read'],
  api: { baseURL: (o) => `${o.baseURL}/api` },
});

export interface TestApp {
  app: Express;
  server: Server;
  strategy: OAuthKeeperStrategy<any, any>;
  url: string;
  keeper: Keeper;
  store: TokenStore;
  sandbox: RunningSandbox;
  redis?: Redis | Cluster;
  backend: TokenStoreBackend;
  /** The session's token owner id, read through a test-only route. */
  ownerOf(agent: ReturnType<typeof request.agent>): Promise<string>;
  /** Rewrites the stored token set as if time had passed: it expires at `expiresAt` (default: already expired). */
  expireToken(owner: string, expiresAt?: number | null): Promise<void>;
  prefix: string;
  agent(): ReturnType<typeof request.agent>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** `redis` (default) uses connect-redis + RedisBackend on the test redis-server; `cluster` needs `cluster`. */
  storage?: 'redis' | 'memory' | 'cluster';
  cluster?: RedisCluster;
  /** Options of the default OAuth2 sandbox (ignored when startSandbox is given). */
  sandbox?: OAuth2SandboxOptions;
  /** Starts the provider's sandbox; default: the generic OAuth2 sandbox with autoApprove. */
  startSandbox?: () => Promise<RunningSandbox>;
  /** Builds the strategy under test against the running sandbox; default: the `example` provider. */
  strategy?: (sandbox: RunningSandbox) => OAuthKeeperStrategy<any, any>;
  keeper?: Partial<Omit<KeeperOptions, 'strategies' | 'store' | 'passport'>>;
  usePassportSession?: boolean;
  routes?: (app: Express, keeper: Keeper, passport: InstanceType<typeof Passport>) => void;
  /** Mounted before everything else, session included: what every answer carries (e.g. a CSP header). */
  first?: (app: Express) => void;
  cookie?: session.CookieOptions;
  /** With Redis: `connect-redis` (default) or `keeper`, `keeper.sessionStore({ client })` (session and token sets in one MGET). */
  sessionStore?: 'connect-redis' | 'keeper';
}

export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const sandbox = options.startSandbox ? await options.startSandbox() : await startOAuth2Sandbox({ autoApprove: true, ...options.sandbox });
  const prefix = uniquePrefix('app');
  let redis: Redis | Cluster | undefined;
  if (options.storage === 'cluster') {
    if (!options.cluster) throw new Error("storage: 'cluster' needs the cluster option");
    redis = options.cluster.client();
  } else if (options.storage !== 'memory') {
    redis = newRedis();
  }
  const backend: TokenStoreBackend = redis ? new RedisBackend({ client: redis }) : new MemoryBackend();
  const store = new TokenStore({ backend, encryptionKeys: [randomBytes(32)], prefix });
  const passport = new Passport();
  passport.serializeUser((user, done) => done(null, user));
  passport.deserializeUser((user, done) => done(null, user as Express.User));
  const strategy = options.strategy
    ? options.strategy(sandbox)
    : new OAuthKeeperStrategy(exampleProvider, {
        clientID: 'sandbox-client',
        clientSecret: 'sandbox-secret',
        callbackURL: '/auth/example/callback',
        baseURL: sandbox.url,
      });
  const name = strategy.name;
  const keeper = oauthKeeper({ strategies: [strategy], store, passport, ...options.keeper });

  const app = express();
  options.first?.(app);
  app.use(
    session({
      secret: 'test-secret',
      resave: false,
      saveUninitialized: false,
      ...(redis
        ? {
            store:
              options.sessionStore === 'keeper'
                ? keeper.sessionStore({ client: redis, prefix: `${prefix}sess:` })
                : new RedisStore({ client: redis, prefix: `${prefix}sess:` }),
          }
        : {}),
      cookie: { httpOnly: true, sameSite: 'lax', ...options.cookie },
    }),
  );
  app.use(passport.initialize());
  if (options.usePassportSession !== false) app.use(passport.session());
  app.use(keeper.middleware());
  app.get('/', (_req, res) => {
    res.send('home');
  });
  app.get('/me', keeper.ensureAuthorized(name), (req, res) => {
    res.json({ provider: req.oauthToken?.provider, scope: req.oauthToken?.scope, user: req.user ?? null });
  });
  app.get('/page', keeper.ensureAuthorized(name), (_req, res) => {
    res.type('html').send('<p>guarded page</p>');
  });
  app.post('/logout', keeper.logout());
  app.get('/__owner', (req, res) => {
    res.json({ owner: req.session.oauthKeeper?.owner ?? null });
  });
  options.routes?.(app, keeper, passport);

  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    app,
    server,
    url,
    strategy,
    keeper,
    store,
    sandbox,
    ...(redis ? { redis } : {}),
    backend,
    prefix,
    agent: () => request.agent(url),
    ownerOf: async (agent) => {
      const res = await agent.get('/__owner').expect(200);
      if (!res.body.owner) throw new Error('this session has no token owner yet: log in first');
      return res.body.owner as string;
    },
    expireToken: async (owner, expiresAt = Date.now() - 1000) => {
      const stored = await store.get(owner, name);
      if (!stored) throw new Error('no stored token set to expire');
      await store.put(owner, name, { ...stored.tokenSet, expiresAt }, stored.generation);
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await sandbox.close();
      await redis?.quit();
    },
  };
}

/** Follows the provider's redirect as the browser would, without the app's cookies. */
export async function visitProvider(location: string): Promise<string> {
  const response = await fetch(location, { redirect: 'manual' });
  const next = response.headers.get('location');
  await response.arrayBuffer();
  if (response.status !== 302 || !next) throw new Error(`provider answered ${response.status} without a redirect`);
  return next;
}

/** Starts a login and returns the provider's callback URL (path + query) for the app. */
export async function startLogin(agent: ReturnType<typeof request.agent>, path = '/auth/example'): Promise<string> {
  const start = await agent.get(path).expect(302);
  const callback = new URL(await visitProvider(start.headers['location'] as string));
  return callback.pathname + callback.search;
}

/** A complete login; returns the final redirect location. */
export async function login(agent: ReturnType<typeof request.agent>, path = '/auth/example'): Promise<string> {
  const callback = await startLogin(agent, path);
  const done = await agent.get(callback).expect(303);
  return done.headers['location'] as string;
}
