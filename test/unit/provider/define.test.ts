import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import session from 'express-session';
import { Passport } from 'passport';
import request from 'supertest';
import { ErrorCodes, OAuthKeeperError } from '../../../src/errors';
import { codeChallengeS256 } from '../../../src/lib/pkce';
import type { TokenSet } from '../../../src/lib/token-set';
import { OAuthKeeperStrategy } from '../../../src/passport/strategy';
import { defineProvider, validateCommonOptions, type ProviderSpec } from '../../../src/provider/define';
import type { ApiRequest, AuthorizationContext, ProviderDefinition, ProviderOptions } from '../../../src/provider/types';

const OPTIONS: ProviderOptions = { clientID: 'client-1', clientSecret: 'secret-1', callbackURL: '/auth/acme/callback' };

function acme(spec: Partial<ProviderSpec> = {}): ProviderDefinition {
  return defineProvider({
    name: 'acme',
    authorizationURL: 'https://id.acme.example/oauth/authorize?tenant=t1',
    tokenURL: 'https://id.acme.example/oauth/token',
    ...spec,
  });
}

const CONTEXT: AuthorizationContext = { redirectUri: 'https://app.example/auth/acme/callback', state: 'state-123', scope: 'read write' };

async function authorizationParams(definition: ProviderDefinition, context: AuthorizationContext = CONTEXT, options = OPTIONS) {
  const url = await definition.authorizationURL(options, context);
  return { url, params: Object.fromEntries(url.searchParams) };
}

function configurationMessage(run: () => void): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(OAuthKeeperError);
    expect((error as OAuthKeeperError).code).toBe(ErrorCodes.CONFIGURATION_INVALID);
    return (error as Error).message;
  }
  throw new Error('no configuration error was thrown');
}

function token(extra: Partial<TokenSet> = {}): TokenSet {
  return { accessToken: 'at-secret', tokenType: 'bearer', expiresAt: null, extras: {}, obtainedAt: Date.now(), ...extra };
}

// ---------------------------------------------------------------------------
// the authorization URL
// ---------------------------------------------------------------------------

describe('defineProvider: the authorization URL', () => {
  it('carries response_type, client_id, redirect_uri, state and scope, keeping the URL own query', async () => {
    const { url, params } = await authorizationParams(acme(), CONTEXT);
    expect(url.origin + url.pathname).toBe('https://id.acme.example/oauth/authorize');
    expect(params).toEqual({
      tenant: 't1',
      response_type: 'code',
      client_id: 'client-1',
      redirect_uri: 'https://app.example/auth/acme/callback',
      state: 'state-123',
      scope: 'read write',
    });
  });

  it('adds the PKCE S256 parameters only with a challenge, and a nonce only with a nonce', async () => {
    const withBoth = (await authorizationParams(acme(), { ...CONTEXT, codeChallenge: 'challenge-abc', nonce: 'nonce-xyz' })).params;
    expect(withBoth).toMatchObject({ code_challenge: 'challenge-abc', code_challenge_method: 'S256', nonce: 'nonce-xyz' });

    const without = (await authorizationParams(acme(), CONTEXT)).params;
    expect(without).not.toHaveProperty('code_challenge');
    expect(without).not.toHaveProperty('code_challenge_method');
    expect(without).not.toHaveProperty('nonce');
  });

  it('leaves scope out when the scope is empty', async () => {
    expect((await authorizationParams(acme(), { ...CONTEXT, scope: '' })).params).not.toHaveProperty('scope');
  });

  it('adds the spec authorizationParams, computed from the options, and resolves a per-options URL', async () => {
    interface Regional extends ProviderOptions {
      region: string;
    }
    const regional = defineProvider<Regional>({
      name: 'regional',
      authorizationURL: (o) => `https://${o.region}.id.example/authorize`,
      tokenURL: (o) => `https://${o.region}.id.example/token`,
      authorizationParams: (o) => ({ access_type: 'offline', prompt: 'consent', region: o.region }),
    });
    const url = await regional.authorizationURL({ ...OPTIONS, region: 'eu' }, CONTEXT);
    expect(url.host).toBe('eu.id.example');
    expect(Object.fromEntries(url.searchParams)).toMatchObject({ access_type: 'offline', prompt: 'consent', region: 'eu', client_id: 'client-1' });
  });

  it("the spec's authorizationParams never replace the flow's own parameters", async () => {
    const pushy = acme({ authorizationParams: () => ({ state: 'fixed', redirect_uri: 'https://evil.example/cb', response_type: 'token', client_id: 'other', extra: 'kept' }) });
    const { params } = await authorizationParams(pushy, CONTEXT);
    expect(params).toMatchObject({ state: CONTEXT.state, redirect_uri: CONTEXT.redirectUri, response_type: 'code', client_id: 'client-1', extra: 'kept' });
  });

  it('the definition data: PKCE on by default, nonce off, scope and separator as given, frozen', () => {
    const plain = acme();
    expect(plain).toMatchObject({ name: 'acme', pkce: true, nonce: false, scopeSeparator: ' ', defaultScope: [], formPostCallback: false });
    expect(plain.stateTransport).toEqual({ kind: 'parameter' });
    expect(Object.isFrozen(plain)).toBe(true);
    expect(Object.isFrozen(plain.defaultScope)).toBe(true);

    const custom = acme({ pkce: false, nonce: true, scope: ['a', 'b'], scopeSeparator: ',' });
    expect(custom).toMatchObject({ pkce: false, nonce: true, defaultScope: ['a', 'b'], scopeSeparator: ',' });
  });

  it('a hooks.authorizationURL replaces the standard one', async () => {
    const hooked = acme({ hooks: { authorizationURL: (_o, context) => new URL(`https://custom.example/go?s=${context.state}`) } });
    expect((await hooked.authorizationURL(OPTIONS, CONTEXT)).toString()).toBe('https://custom.example/go?s=state-123');
  });

  describe('through the strategy (the login redirect)', () => {
    async function loginRedirect(definition: ProviderDefinition) {
      const passport = new Passport();
      passport.use(new OAuthKeeperStrategy(definition, { ...OPTIONS }));
      const app = express();
      app.use(session({ secret: 'test-secret', resave: false, saveUninitialized: false }));
      app.use(passport.initialize());
      app.get('/auth/acme', passport.authenticate(definition.name, { session: false }));
      app.get('/tx', (req, res) => {
        res.json(req.session.oauthKeeper?.tx ?? {});
      });
      const agent = request.agent(app);
      const res = await agent.get('/auth/acme').expect(302);
      const url = new URL(res.headers['location'] as string);
      const transactions = (await agent.get('/tx').expect(200)).body as Record<string, { codeVerifier?: string; nonce?: string; redirectUri: string }>;
      return { url, params: Object.fromEntries(url.searchParams), transactions };
    }

    it('joins the scope with scopeSeparator and sends an S256 challenge of the stored verifier', async () => {
      const { params, transactions } = await loginRedirect(acme({ scope: ['read', 'write'], scopeSeparator: ',' }));
      expect(params['scope']).toBe('read,write');
      expect(params['response_type']).toBe('code');
      expect(params['client_id']).toBe('client-1');
      expect(params['redirect_uri']).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/auth\/acme\/callback$/);
      const state = params['state']!;
      expect(state).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const tx = transactions[state];
      expect(tx?.redirectUri).toBe(params['redirect_uri']);
      expect(params['code_challenge_method']).toBe('S256');
      expect(params['code_challenge']).toBe(codeChallengeS256(tx!.codeVerifier!));
      expect(params).not.toHaveProperty('nonce');
    });

    it('pkce: false sends no challenge and stores no verifier; nonce: true sends the stored nonce', async () => {
      const { params, transactions } = await loginRedirect(acme({ pkce: false, nonce: true, scope: ['openid'] }));
      expect(params).not.toHaveProperty('code_challenge');
      expect(params).not.toHaveProperty('code_challenge_method');
      const tx = transactions[params['state']!];
      expect(tx).toBeDefined();
      expect(tx).not.toHaveProperty('codeVerifier');
      expect(params['nonce']).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(params['nonce']).toBe(tx!.nonce);
      expect(params['scope']).toBe('openid');
    });
  });
});

// ---------------------------------------------------------------------------
// option validation
// ---------------------------------------------------------------------------

describe('defineProvider: option validation', () => {
  it('accepts complete options, with a path or an absolute http(s) callbackURL', () => {
    const definition = acme();
    expect(() => definition.validateOptions(OPTIONS)).not.toThrow();
    expect(() => definition.validateOptions({ ...OPTIONS, callbackURL: 'https://app.example/cb' })).not.toThrow();
    expect(() => definition.validateOptions({ ...OPTIONS, callbackURL: 'http://localhost:3000/cb' })).not.toThrow();
  });

  it('a missing clientID names the fix', () => {
    const message = configurationMessage(() => acme().validateOptions({ ...OPTIONS, clientID: '' }));
    expect(message).toBe('The acme strategy needs clientID: the client (app) id the provider issued you.');
    expect(configurationMessage(() => acme().validateOptions({ clientSecret: 's', callbackURL: '/cb' } as ProviderOptions))).toMatch(/needs clientID/);
  });

  it('a missing clientSecret names the fix, unless the client authenticates with none', () => {
    const { clientSecret: _secret, ...noSecret } = OPTIONS;
    expect(configurationMessage(() => acme().validateOptions(noSecret))).toBe(
      'The acme strategy needs clientSecret: the client secret the provider issued with clientID.',
    );
    expect(configurationMessage(() => acme().validateOptions({ ...OPTIONS, clientSecret: '' }))).toMatch(/needs clientSecret/);
    expect(() => acme({ clientAuthentication: 'none' }).validateOptions(noSecret)).not.toThrow();
  });

  it('a bad callbackURL names the fix with an example path for this provider', () => {
    for (const callbackURL of ['auth/acme/callback', 'ftp://app.example/cb', '', 'javascript:alert(1)']) {
      expect(configurationMessage(() => acme().validateOptions({ ...OPTIONS, callbackURL }))).toBe(
        'The acme strategy needs callbackURL: an absolute http(s) URL or a path such as "/auth/acme/callback", registered with the provider.',
      );
    }
    expect(configurationMessage(() => acme().validateOptions({ ...OPTIONS, callbackURL: undefined } as unknown as ProviderOptions))).toMatch(
      /needs callbackURL/,
    );
  });

  it('no options object at all', () => {
    expect(configurationMessage(() => validateCommonOptions('acme', undefined as unknown as ProviderOptions, true))).toBe(
      'The acme strategy needs an options object.',
    );
  });

  it('the strategy runs the validation at construction', () => {
    expect(() => new OAuthKeeperStrategy(acme(), { ...OPTIONS, clientID: '' })).toThrow(/needs clientID/);
  });

  it('hooks.validateOptions replaces the common checks', () => {
    const seen: ProviderOptions[] = [];
    const hooked = acme({ hooks: { validateOptions: (o) => void seen.push(o) } });
    expect(() => hooked.validateOptions({ ...OPTIONS, clientID: '' })).not.toThrow();
    expect(seen).toHaveLength(1);
  });

  it('refuses a bad provider name and a provider without endpoints, naming the fix', () => {
    expect(configurationMessage(() => defineProvider({ name: 'has space', authorizationURL: 'https://a', tokenURL: 'https://t' }))).toMatch(
      /defineProvider needs a name made of letters, digits/,
    );
    expect(configurationMessage(() => defineProvider({ name: '-lead', authorizationURL: 'https://a', tokenURL: 'https://t' }))).toMatch(
      /needs a name/,
    );
    expect(configurationMessage(() => defineProvider({ name: 'bare' } as unknown as ProviderSpec))).toBe(
      'defineProvider("bare") needs authorizationURL and tokenURL (or hooks that replace them).',
    );
    // Hooks that replace both endpoints are enough.
    const hooked = defineProvider({
      name: 'hooked',
      hooks: { authorizationURL: () => new URL('https://a.example'), requestToken: async () => token() },
    } as unknown as ProviderSpec);
    expect(hooked.name).toBe('hooked');
  });
});

// ---------------------------------------------------------------------------
// the api binding
// ---------------------------------------------------------------------------

describe('defineProvider: the api binding', () => {
  const apiRequest = (): ApiRequest => ({
    method: 'GET',
    url: new URL('https://api.acme.example/v1/me'),
    headers: new Headers({ accept: 'application/json', authorization: 'Basic old' }),
  });

  it('no api spec, no binding', () => {
    expect(acme().api).toBeUndefined();
  });

  it('defaults: Authorization: Bearer (whatever case the provider spelled), without touching the input', async () => {
    const api = acme({ api: { baseURL: 'https://api.acme.example' } }).api!;
    expect(api.baseURL(OPTIONS)).toBe('https://api.acme.example');
    const original = apiRequest();
    const attached = await api.attach(original, token({ tokenType: 'bearer' }), OPTIONS);
    expect(attached.headers.get('authorization')).toBe('Bearer at-secret');
    expect(attached.headers.get('accept')).toBe('application/json');
    expect(attached.url.toString()).toBe('https://api.acme.example/v1/me');
    expect(original.headers.get('authorization')).toBe('Basic old');
    expect(Object.isFrozen(api)).toBe(true);
    expect(api).not.toHaveProperty('readResponse');
    expect(api).not.toHaveProperty('secretParameters');
  });

  it('defaults: only HTTP 401 means the token was rejected', () => {
    const api = acme({ api: { baseURL: 'https://api.acme.example' } }).api!;
    const head = (status: number, body?: unknown) => ({ status, headers: new Headers(), ...(body === undefined ? {} : { body }) });
    expect(api.isTokenRejected(head(401))).toBe(true);
    expect(api.isTokenRejected(head(403, { error: 'invalid_token' }))).toBe(false);
    expect(api.isTokenRejected(head(200))).toBe(false);
    expect(api.isTokenRejected(head(500))).toBe(false);
  });

  it('a spec attach, isTokenRejected, per-options baseURL and secretParameters are used as given', async () => {
    interface Regional extends ProviderOptions {
      region: string;
    }
    const definition = defineProvider<Regional>({
      name: 'regional',
      authorizationURL: 'https://id.example/authorize',
      tokenURL: 'https://id.example/token',
      api: {
        baseURL: (o) => `https://${o.region}.api.example`,
        attach: (req, t) => {
          const url = new URL(req.url);
          url.searchParams.set('access_token', t.accessToken);
          return { ...req, url };
        },
        isTokenRejected: (response) => response.status === 403,
        secretParameters: ['sign'],
      },
    });
    const api = definition.api!;
    const regional = { ...OPTIONS, region: 'ap' };
    expect(api.baseURL(regional)).toBe('https://ap.api.example');
    const attached = await api.attach(apiRequest(), token(), regional);
    expect(attached.url.searchParams.get('access_token')).toBe('at-secret');
    expect(api.isTokenRejected({ status: 403, headers: new Headers() })).toBe(true);
    expect(api.isTokenRejected({ status: 401, headers: new Headers() })).toBe(false);
    expect(api.secretParameters).toEqual(['sign']);
    expect(Object.isFrozen(api.secretParameters)).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// the token request against a real HTTP endpoint
// ---------------------------------------------------------------------------

describe('defineProvider: the standard token request', () => {
  let server: Server;
  let tokenURL: string;
  const received: Array<{ headers: IncomingMessage['headers']; body: URLSearchParams }> = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        received.push({ headers: req.headers, body });
        const refreshToken = body.get('refresh_token');
        if (refreshToken === 'rt-good') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ access_token: 'at-new', token_type: 'Bearer', expires_in: 3600 }));
          return;
        }
        const error = refreshToken === 'rt-revoked' ? 'invalid_grant' : 'invalid_token';
        res.writeHead(refreshToken === 'rt-revoked' ? 400 : 401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    tokenURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  beforeEach(() => {
    received.length = 0;
  });

  const refresh = (definition: ProviderDefinition, refreshToken: string) =>
    definition.requestToken(OPTIONS, { grantType: 'refresh_token', refreshToken, previous: token({ refreshToken }) });

  const refusal = async (definition: ProviderDefinition, refreshToken: string): Promise<OAuthKeeperError> => {
    const error = await refresh(definition, refreshToken).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(OAuthKeeperError);
    return error as OAuthKeeperError;
  };

  it('posts the refresh grant with client_secret_post and normalizes the answer', async () => {
    const set = await refresh(acme({ tokenURL: () => tokenURL }), 'rt-good');
    expect(set).toMatchObject({ accessToken: 'at-new', tokenType: 'Bearer' });
    expect(set.expiresAt).toEqual(expect.any(Number));
    expect(received).toHaveLength(1);
    expect(received[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(received[0]!.body)).toEqual({
      grant_type: 'refresh_token',
      refresh_token: 'rt-good',
      client_id: 'client-1',
      client_secret: 'secret-1',
    });
  });

  it('a provider declaring grantInvalidErrors [invalid_grant, invalid_token]: a 401 invalid_token is grantInvalid', async () => {
    const declaring = acme({ tokenURL: () => tokenURL, grantInvalidErrors: ['invalid_grant', 'invalid_token'] });
    const error = await refusal(declaring, 'rt-unknown');
    expect(error).toMatchObject({
      code: ErrorCodes.TOKEN_ENDPOINT_FAILED,
      oauthError: 'invalid_token',
      grantInvalid: true,
      transient: false,
      provider: 'acme',
    });
    expect((await refusal(declaring, 'rt-revoked')).grantInvalid).toBe(true);
    expect(received).toHaveLength(2);
  });

  it('a provider not declaring them: invalid_token is not grantInvalid, invalid_grant (the default) still is', async () => {
    const plain = acme({ tokenURL: () => tokenURL });
    const error = await refusal(plain, 'rt-unknown');
    expect(error).toMatchObject({ code: ErrorCodes.TOKEN_ENDPOINT_FAILED, oauthError: 'invalid_token', grantInvalid: false, transient: false });
    expect(await refusal(plain, 'rt-revoked')).toMatchObject({ oauthError: 'invalid_grant', grantInvalid: true });
  });

  it('grantInvalidErrors replaces the default list rather than adding to it', async () => {
    const onlyToken = acme({ tokenURL: () => tokenURL, grantInvalidErrors: ['invalid_token'] });
    expect((await refusal(onlyToken, 'rt-unknown')).grantInvalid).toBe(true);
    expect((await refusal(onlyToken, 'rt-revoked')).grantInvalid).toBe(false);
  });

  it('a hooks.requestToken replaces the HTTP request', async () => {
    const hooked = acme({ tokenURL: () => tokenURL, hooks: { requestToken: async () => token({ accessToken: 'from-hook' }) } });
    expect(await refresh(hooked, 'rt-good')).toMatchObject({ accessToken: 'from-hook' });
    expect(received).toHaveLength(0);
  });

  it('a revocationURL makes a revoke; without one there is none', () => {
    expect(typeof acme({ revocationURL: 'https://id.acme.example/revoke' }).revoke).toBe('function');
    expect(acme().revoke).toBeUndefined();
    expect(acme()).not.toHaveProperty('userProfile');
    expect(typeof acme({ userInfoURL: 'https://id.acme.example/userinfo' }).userProfile).toBe('function');
  });
});
