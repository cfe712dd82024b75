// The example app: every provider, connected or not, the guard, the proxy, refresh events.
import express from 'express';
import session from 'express-session';
import passport from 'passport';
import { Cluster, Redis } from 'ioredis';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { CnblogsStrategy, DiStrategy, MemoryBackend, oauthKeeper, RedisBackend, SopStrategy, TokenStore } from 'oauth-keeper';
import { startCnblogsSandbox, startDiSandbox, startSopSandbox } from 'oauth-keeper/sandbox';
import { homePage } from './home.mjs';
import { startBackgroundJob } from './job.mjs';
import { metricsEndpoint } from './metrics.mjs';

/** Drops undefined values, so unset variables fall back to the strategies' own defaults. */
const defined = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/**
 * One entry per provider: build its strategy from the configuration when a client id is
 * set, otherwise start its sandbox in-process on a free loopback port and use that.
 */
const providers = {
  async di(config, callbackURL, sandboxes, notices) {
    let options = defined(config.di);
    let expireAtProvider;
    if (!options.clientID) {
      const sandbox = await startDiSandbox({ title: 'DI开放平台 sandbox', accessTokenTtlSeconds: SANDBOX_TOKEN_SECONDS });
      sandboxes.push(sandbox);
      options = { ...options, clientID: 'sandbox-client', clientSecret: 'sandbox-secret', baseURL: sandbox.url };
      notices.push(`di: sandbox provider at ${sandbox.url} (log in as alice / wonderland).`);
      expireAtProvider = () => sandbox.engine.expireAccessTokens();
    }
    return {
      strategy: new DiStrategy({ ...options, callbackURL }),
      sample: { method: 'GET', path: '/api/di/patent/search/expression?express=' + encodeURIComponent('申请人=(华为) AND 分类号=(H04L)') + '&page=1&page_row=10' },
      expireAtProvider,
    };
  },
  async cnblogs(config, callbackURL, sandboxes, notices) {
    let options = defined(config.cnblogs);
    let expireAtProvider;
    if (!options.clientID) {
      const sandbox = await startCnblogsSandbox({ title: '博客园 sandbox', accessTokenTtlSeconds: SANDBOX_TOKEN_SECONDS });
      sandboxes.push(sandbox);
      options = { ...options, clientID: 'sandbox-client', clientSecret: 'sandbox-secret', issuer: sandbox.url, apiURL: `${sandbox.url}/api` };
      notices.push(`cnblogs: sandbox OpenID provider at ${sandbox.url} (log in as alice / wonderland).`);
      expireAtProvider = () => sandbox.engine.expireAccessTokens();
    }
    return { strategy: new CnblogsStrategy({ ...options, callbackURL }), sample: { method: 'GET', path: '/api/cnblogs/users' }, expireAtProvider };
  },
  async sop(config, callbackURL, sandboxes, notices) {
    let options = defined(config.sop);
    let expireAtProvider;
    if (!options.clientID) {
      const app = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const sandbox = await startSopSandbox({ title: 'SOP open platform sandbox', apps: [{ appId: 'sandbox-app', publicKey: app.publicKey }] });
      sandboxes.push(sandbox);
      options = {
        clientID: 'sandbox-app',
        authURL: sandbox.url,
        gatewayURL: `${sandbox.url}/`,
        privateKey: app.privateKey.export({ type: 'pkcs8', format: 'pem' }),
        platformPublicKey: sandbox.platformPublicKey,
      };
      notices.push(`sop: sandbox platform at ${sandbox.url} (log in as alice / wonderland).`);
      // sop tokens never expire; the platform can still time them out (aop.app-auth-token-time-out).
      expireAtProvider = () => sandbox.expireAppAuthTokens();
    }
    return {
      strategy: new SopStrategy({ ...options, callbackURL }),
      sample: { method: 'POST', path: '/api/sop/goods.get', body: JSON.stringify({ goods_name: 'iphone6' }) },
      expireAtProvider,
    };
  },
};

/**
 * Builds the app from a config (see config.mjs). Providers without a configured
 * client id run against an in-process sandbox on a free loopback port.
 */
export async function createExampleApp(config) {
  const notices = [...config.notices];
  const sandboxes = [];
  const closers = [];

  // Storage: Redis Cluster, Redis, or memory. The client settings bound every wait on a Redis
  // that is down or stalled: a request then gets 503 with Retry-After, and all recovers by itself.
  let redis;
  if (config.redisClusterNodes) {
    redis = new Cluster(config.redisClusterNodes, { redisOptions: REDIS_OPTIONS, clusterRetryStrategy: REDIS_OPTIONS.retryStrategy });
    notices.push(`Sessions and tokens in the Redis Cluster at ${config.redisClusterNodes.map((n) => `${n.host}:${n.port}`).join(', ')}.`);
  } else if (config.redisURL) {
    redis = new Redis(config.redisURL, REDIS_OPTIONS);
    notices.push('Sessions and tokens in Redis (REDIS_URL).');
  } else {
    notices.push('No REDIS_URL: sessions and tokens live in memory and are lost on restart (embedded default).');
  }
  if (redis) {
    let lastLogged = 0;
    redis.on('error', (error) => {
      // Without a listener ioredis prints "Unhandled error event" for every reconnect attempt.
      if (Date.now() - lastLogged > 10_000) console.error(`redis: ${error.message}`);
      lastLogged = Date.now();
    });
    closers.push(() => redis.quit());
  }
  const backend = redis ? new RedisBackend({ client: redis }) : new MemoryBackend();
  const store = new TokenStore({ backend, encryptionKeys: config.tokenKeys, prefix: 'example-app:' });

  // Providers.
  const strategies = [];
  const apiSamples = {};
  const expireAtProvider = {};
  for (const [name, make] of Object.entries(providers)) {
    const { strategy, sample, expireAtProvider: expire } = await make(config, callback(config, name), sandboxes, notices);
    strategies.push(strategy);
    apiSamples[name] = sample;
    if (expire) expireAtProvider[name] = expire;
  }

  passport.serializeUser((user, done) => done(null, { provider: user.provider, id: user.id, displayName: user.displayName }));
  passport.deserializeUser((user, done) => done(null, user));
  // The app's accounts: the example has no sign-up, so the first provider login of a browser
  // opens an account and later logins join it. A real app returns its own user id here.
  const accounts = accountRegistry(redis);
  // Logins, refreshes, lock waits, API calls and store errors, served at GET /metrics.
  const metrics = metricsEndpoint();
  const keeper = oauthKeeper({
    telemetry: { meter: metrics.meter },
    strategies,
    store,
    passport,
    logger: { warn: (message, fields) => console.warn(`warning: ${message}`, fields ?? ''), error: (message, fields) => console.error(`error: ${message}`, fields ?? '') },
    // Sign in with cnblogs (an OpenID Connect identity); di and sop are data sources connected to that
    // account: connecting them never replaces who is signed in.
    logIn: (provider) => provider === SIGN_IN_PROVIDER,
    // Token sets belong to the account, not the browser session: they outlive it, and the job uses them.
    owner: async (req) => {
      req.session.account ??= `acct-${randomBytes(8).toString('hex')}`;
      await accounts.add(req.session.account);
      return req.session.account;
    },
  });

  const events = [];
  for (const name of ['refresh:start', 'refresh:success', 'refresh:failure', 'refresh:retry', 'lock:wait', 'reauthorization:required']) {
    keeper.events.on(name, (event) => {
      // The owner (another account's id) is not shown to everyone.
      const { owner: _owner, ...shown } = event;
      events.unshift({ at: new Date().toISOString(), event: name, ...shown });
      events.length = Math.min(events.length, 20);
    });
  }

  // The background job: every few seconds, for each account, each connected provider's API — no browser involved.
  const job = startBackgroundJob({ keeper, accounts, apiSamples, intervalMs: config.jobIntervalSeconds * 1000 });
  closers.unshift(() => job.stop());

  const app = express();
  app.disable('x-powered-by');
  // Behind a reverse proxy (TRUST_PROXY=1, loopback, ...), req.protocol and req.host come from
  // X-Forwarded-Proto / -Host: callback URLs, secure cookies and the logout origin check follow them.
  if (config.trustProxy !== undefined) app.set('trust proxy', config.trustProxy);
  app.use(
    session({
      // The session and its token sets in one Redis command (connect-redis's key layout).
      ...(redis ? { store: keeper.sessionStore({ client: redis, prefix: 'example-app:sess:' }) } : {}),
      secret: config.sessionSecret,
      resave: false,
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax', secure: 'auto' },
    }),
  );
  app.use(passport.initialize());
  app.use(passport.session());
  app.use(keeper.middleware());

  // Prometheus's scrape: counts and durations by provider and outcome, never a token or a user.
  app.get('/metrics', metrics.handler);

  app.get('/', (req, res) => {
    res.type('html').send(homePage({ providers: keeper.providers, apiSamples, notices, signIn: SIGN_IN_PROVIDER, expirable: Object.keys(expireAtProvider) }));
  });

  app.get('/status', async (req, res, next) => {
    try {
      const providers = {};
      for (const name of keeper.providers) {
        const token = await keeper.token(req, name).catch(() => null);
        providers[name] = token ? { connected: true, ...describe(token) } : { connected: false };
      }
      res.json({ user: req.user ?? null, providers, events, job: job.resultsFor(req.session.account) });
    } catch (error) {
      next(error);
    }
  });

  app.get('/me/:provider', guard(keeper), (req, res) => {
    res.json(describe(req.oauthToken));
  });

  // The proxy: /api/di/patent/search/expression?express=..., /api/cnblogs/users, POST /api/sop/<method>.
  for (const name of keeper.providers) {
    app.use(`/api/${name}`, keeper.ensureAuthorized(name, { unauthorized: 'status' }), keeper.proxy(name));
  }

  // Sandboxes only: the provider forgets its access tokens, so the next API call is refused, and the
  // keeper refreshes and retries once — watch it in the refresh events.
  app.post('/sandbox/:provider/expire', sameOrigin, (req, res) => {
    const expire = expireAtProvider[req.params.provider];
    if (!expire) return res.status(404).json({ error: 'not a sandbox provider' });
    expire();
    res.status(204).end();
  });

  app.post('/disconnect/:provider', sameOrigin, async (req, res, next) => {
    try {
      if (!keeper.providers.includes(req.params.provider)) return res.status(404).json({ error: 'unknown provider' });
      await keeper.disconnect(req, req.params.provider);
      res.status(204).end();
    } catch (error) {
      next(error);
    }
  });

  // The account's tokens outlive sessions; the example has no way back into an account after
  // logout, so its logout also disconnects them (revoking where supported) and the job stops.
  app.post('/logout', keeper.logout({ disconnect: true }));

  app.use(keeper.errorHandler());
  app.use((err, req, res, _next) => {
    res.status(err.status ?? 500).json({ error: err.code ?? 'internal_error', message: err.code ? err.message : 'Something went wrong.' });
  });

  return {
    app,
    keeper,
    notices,
    sandboxes,
    close: async () => {
      for (const sandbox of sandboxes) await sandbox.close();
      for (const close of closers) await close();
    },
  };
}

/** The known accounts: a Redis set when Redis is configured, else in memory. */
function accountRegistry(redis) {
  const key = 'example-app:accounts';
  const local = new Set();
  return {
    add: async (account) => (redis ? redis.sadd(key, account) : local.add(account)),
    remove: async (account) => (redis ? redis.srem(key, account) : local.delete(account)),
    list: async () => (redis ? redis.smembers(key) : [...local]),
  };
}

function callback(config, name) {
  return config.baseURL ? `${config.baseURL.replace(/\/$/, '')}/auth/${name}/callback` : `/auth/${name}/callback`;
}

/** req.oauthToken without secrets. */
function describe(token) {
  return { provider: token.provider, tokenType: token.tokenType, expiresAt: token.expiresAt, scope: token.scope ?? null, extras: token.extras };
}

/** The guard for `/:provider` routes. */
function guard(keeper) {
  const guards = new Map(keeper.providers.map((name) => [name, keeper.ensureAuthorized(name)]));
  return (req, res, next) => {
    const handler = guards.get(req.params.provider);
    if (!handler) return res.status(404).json({ error: 'unknown provider' });
    return handler(req, res, next);
  };
}

/** As keeper.logout() checks: by Origin, or else by Sec-Fetch-Site. */
function sameOrigin(req, res, next) {
  const origin = req.get('origin');
  const site = req.get('sec-fetch-site');
  const crossOrigin =
    origin !== undefined ? origin === 'null' || origin !== `${req.protocol}://${req.get('host')}` : site === 'cross-site' || site === 'same-site';
  if (crossOrigin) return res.status(403).json({ error: 'cross-origin request refused' });
  next();
}

/** The provider users sign in with; the others are connected to the signed-in account. */
const SIGN_IN_PROVIDER = 'cnblogs';

/** Sandbox access tokens live this long, so that a visitor sees a refresh (60 s before expiry) within a minute. */
const SANDBOX_TOKEN_SECONDS = 90;

/** Bounded waits on Redis; see "Running in production" in the README. */
const REDIS_OPTIONS = {
  commandTimeout: 2000,
  maxRetriesPerRequest: 1,
  retryStrategy: (times) => Math.min(times * 200, 2000),
};
