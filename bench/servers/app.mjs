// The servers under measurement, one kind per process (config.kind):
//   raw        node:http alone (ceiling)
//   express    Express alone (ceiling)
//   session    express-session + connect-redis, a token-sized object in the session
//   passport   what a passport-oauth2 app does: express-session + connect-redis + passport, the
//              tokens serialized into the session by a real OAuth2Strategy login (state + PKCE);
//              /api/* through http-proxy-middleware 3 with a keep-alive agent, adding the Bearer
//   keeper-mw  the README's quick-start stack (passport + keeper.middleware()), /me not guarded
//   keeper     the same with /me behind keeper.ensureAuthorized(); /api/* through keeper.proxy()
//   keeper-cr  the same on connect-redis + guardSessionStore() instead of keeper.sessionStore()
//   keeper-lean  the guard without Passport in the request path (logIn: false: the provider is
//              connected to the session), the keeper's counterpart of the session-only app
// Every kind answers GET /me with { provider, scope, expiresAt, user } (or 401).
import http from 'node:http';
import express from 'express';
import session from 'express-session';
import passportModule from 'passport';
import { RedisStore } from 'connect-redis';
import { Redis } from 'ioredis';
import { entry } from '../lib/build.mjs';
import { config, failed, listen, onClose, ready } from './child.mjs';

const { kind } = config;

function redisClient() {
  // The README's client settings.
  const redis = new Redis(config.redisUrl, {
    commandTimeout: 2000,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  redis.on('error', (error) => console.error(`${kind} redis:`, error.message));
  onClose(() => redis.quit().catch(() => redis.disconnect()));
  return redis;
}

const sessionOptions = (store) => ({
  store,
  secret: config.sessionSecret,
  resave: false,
  saveUninitialized: false,
  cookie: { httpOnly: true, sameSite: 'lax', secure: 'auto' },
});

/** As big as what a passport-oauth2 app keeps: access and refresh token, expiry, scope, user id. */
function tokenSizedObject() {
  const token = () => Buffer.alloc(32, Math.random().toString(36)).toString('base64url');
  return { id: 'u-alice', provider: 'example', accessToken: token(), refreshToken: token(), tokenType: 'Bearer', expiresAt: Date.now() + 3600_000, scope: 'read' };
}

async function build() {
  if (kind === 'raw') {
    const body = JSON.stringify({ provider: 'example', scope: 'read', expiresAt: new Date(Date.now() + 3600_000), user: 'u-alice' });
    return http.createServer((req, res) => {
      if (req.url === '/me') {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
        return res.end(body);
      }
      res.writeHead(404).end();
    });
  }

  const app = express();
  app.disable('x-powered-by');
  if (kind === 'express') {
    app.get('/me', (_req, res) => res.json({ provider: 'example', scope: 'read', expiresAt: new Date(Date.now() + 3600_000), user: 'u-alice' }));
    return http.createServer(app);
  }

  const redis = redisClient();

  if (kind === 'session') {
    app.use(session(sessionOptions(new RedisStore({ client: redis, prefix: 'sess:' }))));
    app.get('/login', (req, res) => {
      req.session.token = tokenSizedObject();
      res.redirect('/me');
    });
    app.get('/me', (req, res) => {
      const t = req.session.token;
      if (!t) return res.status(401).json({ error: 'unauthorized' });
      res.json({ provider: t.provider, scope: t.scope, expiresAt: new Date(t.expiresAt), user: t.id });
    });
    return http.createServer(app);
  }

  const passport = new passportModule.Passport();
  passport.serializeUser((user, done) => done(null, user));
  passport.deserializeUser((user, done) => done(null, user));

  if (kind === 'passport') {
    const { default: OAuth2Strategy } = await import('passport-oauth2');
    const { createProxyMiddleware } = await import('http-proxy-middleware');
    passport.use(
      'example',
      new OAuth2Strategy(
        {
          authorizationURL: `${config.sandboxUrl}/authorize`,
          tokenURL: `${config.sandboxUrl}/token`,
          clientID: 'sandbox-client',
          clientSecret: 'sandbox-secret',
          callbackURL: '/auth/example/callback',
          scope: ['read'],
          state: true,
          pkce: true,
        },
        (accessToken, refreshToken, params, _profile, done) =>
          done(null, {
            id: params.user_id,
            provider: 'example',
            accessToken,
            refreshToken,
            tokenType: params.token_type,
            expiresAt: Date.now() + Number(params.expires_in) * 1000,
            scope: params.scope,
          }),
      ),
    );
    app.use(session(sessionOptions(new RedisStore({ client: redis, prefix: 'sess:' }))));
    app.use(passport.initialize());
    app.use(passport.session());
    app.get('/auth/example', passport.authenticate('example'));
    app.get('/auth/example/callback', passport.authenticate('example', { successRedirect: '/me', failureRedirect: '/failed' }));
    app.get('/me', (req, res) => {
      const u = req.user;
      if (!u) return res.status(401).json({ error: 'unauthorized' });
      res.json({ provider: u.provider, scope: u.scope, expiresAt: new Date(u.expiresAt), user: u.id });
    });
    const upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    onClose(() => upstreamAgent.destroy());
    app.use(
      '/api',
      (req, res, next) => (req.user ? next() : res.status(401).json({ error: 'unauthorized' })),
      createProxyMiddleware({
        target: `${config.upstreamUrl}/api`,
        changeOrigin: true,
        agent: upstreamAgent,
        on: {
          proxyReq(proxyReq, req) {
            proxyReq.removeHeader('cookie');
            proxyReq.setHeader('authorization', `Bearer ${req.user.accessToken}`);
          },
        },
      }),
    );
    return http.createServer(app);
  }

  if (kind === 'keeper' || kind === 'keeper-mw' || kind === 'keeper-cr' || kind === 'keeper-lean') {
    const { defineProvider, guardSessionStore, OAuthKeeperStrategy, oauthKeeper, RedisBackend, TokenStore } = await import(entry(config.keeperDir));
    const example = defineProvider({
      name: 'example',
      authorizationURL: `${config.sandboxUrl}/authorize`,
      tokenURL: `${config.sandboxUrl}/token`,
      revocationURL: `${config.sandboxUrl}/revoke`,
      scope: ['read'],
      api: { baseURL: `${config.upstreamUrl ?? config.sandboxUrl}/api` },
    });
    const keeper = oauthKeeper({
      passport,
      strategies: [new OAuthKeeperStrategy(example, { clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/example/callback' })],
      store: new TokenStore({ backend: new RedisBackend({ client: redis }), encryptionKeys: [config.tokenKey] }),
      // keeper-lean: the provider is connected to the session, nobody is signed in through Passport.
      ...(kind === 'keeper-lean' ? { logIn: false } : {}),
    });
    // The README's: keeper.sessionStore() (session and token sets in one Redis command); keeper-cr: connect-redis.
    const store = kind === 'keeper-cr' || typeof keeper.sessionStore !== 'function'
      ? guardSessionStore(new RedisStore({ client: redis, prefix: 'sess:' }))
      : keeper.sessionStore({ client: redis, prefix: 'sess:' });
    app.use(session(sessionOptions(store)));
    if (kind !== 'keeper-lean') {
      app.use(passport.initialize());
      app.use(passport.session());
    }
    app.use(keeper.middleware());
    if (kind !== 'keeper-mw') {
      app.get('/me', keeper.ensureAuthorized('example', { unauthorized: 'status' }), (req, res) => {
        const { provider, scope, expiresAt } = req.oauthToken;
        res.json({ provider, scope, expiresAt, user: req.user?.id });
      });
    } else {
      app.get('/me', (req, res) => {
        if (!req.user) return res.status(401).json({ error: 'unauthorized' });
        res.json({ provider: 'example', scope: 'read', expiresAt: null, user: req.user.id });
      });
    }
    app.use('/api', keeper.ensureAuthorized('example', { unauthorized: 'status' }), keeper.proxy('example'));
    app.use(keeper.errorHandler());
    return http.createServer(app);
  }
  throw new Error(`unknown kind ${kind}`);
}

try {
  const server = await build();
  server.keepAliveTimeout = 60_000;
  const port = await listen(server);
  ready({ url: `http://127.0.0.1:${port}`, kind });
} catch (error) {
  failed(error);
}
