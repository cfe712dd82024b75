import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import Redis from 'ioredis';
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
  redis?: Redis;
  backend: TokenStoreBackend;
  prefix: string;
  agent(): ReturnType<typeof request.agent>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** `redis` (default) uses connect-redis + RedisBackend on the test redis-server. */
  storage?: 'redis' | 'memory';
  /** Options of the default OAuth2 sandbox (ignored when startSandbox is given). */
  sandbox?: OAuth2SandboxOptions;
  /** Starts the provider's sandbox; default: the generic OAuth2 sandbox with autoApprove. */
  startSandbox?: () => Promise<RunningSandbox>;
  /** Builds the strategy under test against the running sandbox; default: the `example` provider. */
  strategy?: (sandbox: RunningSandbox) => OAuthKeeperStrategy<any, any>;
  keeper?: Partial<Omit<KeeperOptions, 'strategies' | 'store' | 'passport'>>;
  usePassportSession?: boolean;
  routes?: (app: Express, keeper: Keeper) => void;
  cookie?: session.CookieOptions;
}

export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const sandbox = options.startSandbox ? await options.startSandbox() : await startOAuth2Sandbox({ autoApprove: true, ...options.sandbox });
  const prefix = uniquePrefix('app');
  const redis = options.storage === 'memory' ? undefined : newRedis();
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
  app.use(
    session({
      secret: 'test-secret',
      resave: false,
      saveUninitialized: false,
      ...(redis ? { store: new RedisStore({ client: redis, prefix: `${prefix}sess:` }) } : {}),
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
  options.routes?.(app, keeper);

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
