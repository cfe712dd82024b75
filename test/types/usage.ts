// Compiled by test/types.test.ts against the built package, as users import it.
// Compiling is the assertion: each @ts-expect-error line must be an error.
import express from 'express';
import session from 'express-session';
import passport from 'passport';
import {
  authorized,
  defineProvider,
  ensureAuthorized,
  ErrorCodes,
  MemoryBackend,
  OAuthKeeperError,
  OAuthKeeperStrategy,
  oauthKeeper,
  TokenStore,
  tokenKeeper,
  type AuthorizedHandler,
  type OwnerConnection,
  type AuthorizedRequest,
  type OAuthToken,
  type ProviderOptions,
  type TokenSet,
} from 'oauth-keeper';
import { startOAuth2Sandbox, type RunningSandbox } from 'oauth-keeper/sandbox';

interface AcmeOptions extends ProviderOptions {
  tenant: string;
}

const acme = defineProvider<AcmeOptions>({
  name: 'acme',
  authorizationURL: (o) => `https://${o.tenant}.acme.example/authorize`,
  tokenURL: (o) => `https://${o.tenant}.acme.example/token`,
  api: { baseURL: 'https://api.acme.example' },
});

const strategy = new OAuthKeeperStrategy(acme, {
  clientID: 'id',
  clientSecret: 'secret',
  callbackURL: '/auth/acme/callback',
  tenant: 't1',
});

// @ts-expect-error a provider option is missing (tenant)
new OAuthKeeperStrategy(acme, { clientID: 'id', clientSecret: 'secret', callbackURL: '/cb' });

interface AppUser {
  id: string;
}
new OAuthKeeperStrategy<AcmeOptions, AppUser>(
  acme,
  { clientID: 'id', callbackURL: '/cb', tenant: 't', passReqToCallback: true },
  (req: express.Request, tokens: TokenSet, profile, done) => {
    const path: string = req.path;
    done(null, { id: profile.id + tokens.accessToken + path });
  },
);

const store = new TokenStore({ backend: new MemoryBackend(), encryptionKeys: ['0'.repeat(64)] });
const keeper = oauthKeeper({ strategies: [strategy], store, passport });

const app = express();
app.use(session({ secret: 's', resave: false, saveUninitialized: false }));
app.use(passport.initialize());
app.use(keeper.middleware());

// An app that mounts passport.authenticate itself: routes: false, then completeLogin() on the callback.
const selfMounted = oauthKeeper({ strategies: [strategy], store, passport, routes: false });
app.get('/auth/acme', passport.authenticate(strategy));
app.get('/auth/acme/callback', passport.authenticate(strategy, { failureRedirect: '/login', keepSessionInfo: true }), selfMounted.completeLogin());
app.get('/auth/acme/callback2', passport.authenticate('acme'), selfMounted.completeLogin({ redirect: false }));

app.get('/free', (req, res) => {
  // Not behind the guard: possibly absent.
  // @ts-expect-error oauthToken may be undefined here
  const direct: string = req.oauthToken.accessToken;
  const maybe: string | undefined = req.oauthToken?.accessToken;
  // @ts-expect-error req.oauthFetch is there only where keeper.middleware() ran
  void req.oauthFetch('acme', '/x');
  res.json({ direct, maybe });
});

app.get('/guarded', keeper.ensureAuthorized('acme'), (req, res) => {
  const { oauthToken } = req as AuthorizedRequest;
  const token: OAuthToken = oauthToken;
  const expires: Date | null = token.expiresAt;
  // @ts-expect-error the refresh token is never exposed on req.oauthToken
  const refresh = token.refreshToken;
  // @ts-expect-error req.oauthToken is read-only
  token.accessToken = 'x';
  res.json({ expires, refresh });
});

// authorized(handler): the handler behind the guard reads req.oauthToken with no cast.
app.get(
  '/repos/:id',
  keeper.ensureAuthorized('acme'),
  authorized<{ id: string }>(async (req, res) => {
    const token: OAuthToken = req.oauthToken;
    const id: string = req.params.id; // Express's route parameters, as RequestHandler<{ id: string }> has them
    // @ts-expect-error the parameters are { id }
    void req.params.owner;
    // @ts-expect-error the refresh token is never exposed, with authorized() either
    void req.oauthToken.refreshToken;
    // req.oauthFetch answers the global WHATWG Response (status, json()), not Express's.
    const upstream = await req.oauthFetch('acme', `/repos/${id}`, { headers: { accept: 'application/json' } });
    const upstreamStatus: number = upstream.status;
    const body: unknown = await upstream.json();
    const global: globalThis.Response = upstream;
    // @ts-expect-error it is not Express's Response
    upstream.json({ x: 1 }).status(200);
    res.status(upstreamStatus).json({ body, expires: token.expiresAt, ok: global.ok });
  }),
);
const named: AuthorizedHandler = (req, res) => res.json({ scope: req.oauthToken.scope });
app.get('/named', ensureAuthorized('acme'), authorized(named));
// @ts-expect-error authorized() takes a handler
authorized('acme');

app.get('/standalone', ensureAuthorized('acme', { unauthorized: 'status' }), (_req, res) => res.end());
// @ts-expect-error unknown unauthorized behaviour
ensureAuthorized('acme', { unauthorized: 'sometimes' });

keeper.events.on('refresh:success', (event) => {
  const ms: number = event.durationMs;
  void ms;
});

const error = new OAuthKeeperError(ErrorCodes.STATE_MISSING, 'x');
const code: 'OAUTH_KEEPER_STATE_MISSING' = ErrorCodes.STATE_MISSING;
const status: number = error.status;
// @ts-expect-error codes are a closed set
new OAuthKeeperError('SOMETHING_ELSE', 'x');

async function sandboxUse(): Promise<void> {
  const sandbox: RunningSandbox = await startOAuth2Sandbox({ accessTokenTtlSeconds: 5, rotateRefreshTokens: true });
  sandbox.engine.injectFault('token', { status: 503 });
  const calls: number = sandbox.engine.counters.refresh;
  void calls;
  await sandbox.close();
}

// A worker: no Express, no Passport, no request.
async function workerUse(): Promise<void> {
  const worker = tokenKeeper({ strategies: [strategy], store: new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [Buffer.alloc(32)] }) });
  const owner = worker.forOwner('user-42');
  const token: OAuthToken = await owner.token('acme');
  const answer: globalThis.Response = await owner.fetch('acme', '/repos', { headers: { accept: 'application/json' } });
  const list: OwnerConnection[] = await owner.connections();
  const first: Date | null | undefined = list[0]?.expiresAt;
  const gone: boolean = await owner.disconnect('acme', { revoke: true });
  // @ts-expect-error the refresh token is not exposed to workers either
  void token.refreshToken;
  // @ts-expect-error a worker's keeper takes no passport
  tokenKeeper({ strategies: [strategy], store: new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [Buffer.alloc(32)] }), passport });
  void [answer.status, first, gone];
}

void [code, status, sandboxUse, workerUse];
