import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Request } from 'express';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type JWTPayload, type CryptoKey } from 'jose';
import { ErrorCodes, OAuthKeeperError, OAuthKeeperStrategy, type Profile, type TokenSet } from '../../../src/index';
import {
  CNBLOGS_DEFAULT_API_URL,
  CNBLOGS_DEFAULT_ISSUER,
  CnblogsStrategy,
  cnblogsProvider,
  createCnblogsProvider,
  fetchCnblogsMetadata,
  oidcHalfHash,
  type CnblogsOptions,
} from '../../../src/providers/cnblogs/index';
import { startCnblogsSandbox, type CnblogsSandbox } from '../../../src/sandbox/cnblogs/index';

const base: CnblogsOptions = { clientID: 'client-1', clientSecret: 'secret-1', callbackURL: '/auth/cnblogs/callback' };

async function rejection(promise: Promise<unknown>): Promise<OAuthKeeperError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof OAuthKeeperError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

function thrown(fn: () => unknown): OAuthKeeperError {
  try {
    fn();
  } catch (error) {
    if (error instanceof OAuthKeeperError) return error;
    throw error;
  }
  throw new Error('expected a throw');
}

describe('cnblogs options', () => {
  const check = (options: Partial<CnblogsOptions> & Record<string, unknown>) => thrown(() => cnblogsProvider.validateOptions({ ...base, ...options } as CnblogsOptions));

  it('accepts the defaults and every valid response type / mode pair', () => {
    expect(() => cnblogsProvider.validateOptions(base)).not.toThrow();
    for (const [responseType, responseMode] of [
      ['code', undefined],
      ['code', 'query'],
      ['code', 'form_post'],
      ['code', 'fragment'],
      ['code id_token', undefined],
      ['code id_token', 'form_post'],
      ['code id_token', 'fragment'],
    ] as const) {
      expect(() =>
        cnblogsProvider.validateOptions({ ...base, responseType, ...(responseMode === undefined ? {} : { responseMode }) }),
      ).not.toThrow();
    }
  });

  it('refuses the hybrid flow in the query string, naming the fix', () => {
    const error = check({ responseType: 'code id_token', responseMode: 'query' });
    expect(error.code).toBe(ErrorCodes.CONFIGURATION_INVALID);
    expect(error.message).toMatch(/responseMode "fragment".*"form_post".*responseType "code"/);
  });

  it.each([
    [{ clientSecret: undefined }, /clientSecret/],
    [{ responseType: 'token' }, /responseType option must be "code id_token".*"code"/],
    [{ responseMode: 'web_message' }, /responseMode option must be "query", "form_post" or "fragment"/],
    [{ issuer: 'http://oauth.cnblogs.com' }, /must use https.*loopback/],
    [{ issuer: 'not a url' }, /absolute URL/],
    [{ issuer: 'https://oauth.cnblogs.com/?x=1' }, /without query or fragment/],
    [{ apiURL: 'api.cnblogs.com' }, /apiURL option must be an absolute http\(s\) URL/],
    [{ scope: 'profile CnBlogsApi' }, /must include "openid"/],
    [{ scope: ['profile'] }, /must include "openid"/],
    [{ clockToleranceSeconds: -1 }, /clockToleranceSeconds option must be a number of seconds >= 0/],
    [{ jwksCooldownSeconds: Number.NaN }, /jwksCooldownSeconds/],
  ])('refuses %p', (options, message) => {
    const error = check(options as Record<string, unknown>);
    expect(error.code).toBe(ErrorCodes.CONFIGURATION_INVALID);
    expect(error.message).toMatch(message);
  });

  it('accepts plain http for a loopback issuer (a local sandbox)', () => {
    expect(() => cnblogsProvider.validateOptions({ ...base, issuer: 'http://127.0.0.1:4000' })).not.toThrow();
    expect(() => cnblogsProvider.validateOptions({ ...base, issuer: 'http://localhost:4000/' })).not.toThrow();
  });
});

describe('cnblogs definition and strategy', () => {
  it('declares its quirks as data', () => {
    expect(cnblogsProvider.name).toBe('cnblogs');
    expect(cnblogsProvider.defaultScope).toEqual(['openid', 'profile', 'CnBlogsApi', 'offline_access']);
    expect(cnblogsProvider.pkce).toBe(true);
    expect(cnblogsProvider.nonce).toBe(true);
    expect(cnblogsProvider.formPostCallback).toBe(true);
    expect(cnblogsProvider.stateTransport).toEqual({ kind: 'parameter' });
    expect(Object.isFrozen(cnblogsProvider)).toBe(true);
    expect(CNBLOGS_DEFAULT_ISSUER).toBe('https://oauth.cnblogs.com');
  });

  it('attaches a Bearer header and treats only HTTP 401 as a rejected token', async () => {
    const api = cnblogsProvider.api!;
    expect(api.baseURL(base)).toBe(CNBLOGS_DEFAULT_API_URL);
    expect(api.baseURL({ ...base, apiURL: 'https://api.example/api/' })).toBe('https://api.example/api');
    const token: TokenSet = { accessToken: 'at-1', tokenType: 'bearer', expiresAt: null, extras: {}, obtainedAt: 0 };
    const attached = await api.attach({ method: 'GET', url: new URL('https://api.cnblogs.com/api/users'), headers: new Headers({ accept: 'application/json' }) }, token, base);
    expect(attached.headers.get('authorization')).toBe('Bearer at-1');
    expect(attached.headers.get('accept')).toBe('application/json');
    expect(api.isTokenRejected({ status: 401, headers: new Headers() })).toBe(true);
    // 403: an app-only token on a user API; refreshing would not help.
    expect(api.isTokenRejected({ status: 403, headers: new Headers() })).toBe(false);
  });

  it('binds the definition and the name "cnblogs"; options are checked at construction', () => {
    const strategy = new CnblogsStrategy(base);
    expect(strategy).toBeInstanceOf(OAuthKeeperStrategy);
    expect(strategy.name).toBe('cnblogs');
    expect(strategy.provider.name).toBe('cnblogs');
    expect(new CnblogsStrategy({ ...base, name: 'blog' }).name).toBe('blog');
    expect(() => new CnblogsStrategy({ ...base, responseType: 'code id_token', responseMode: 'query' })).toThrow(/responseMode "query"/);
  });

  it('types both verify callback shapes', () => {
    const plain = new CnblogsStrategy<{ id: string }>(base, (_tokens: TokenSet, profile: Profile, done) => done(null, { id: profile.id }));
    const withReq = new CnblogsStrategy<{ id: string }>({ ...base, passReqToCallback: true }, (req: Request, _tokens, profile, done) =>
      done(null, { id: `${req.method}:${profile.id}` }),
    );
    expect(plain.name).toBe('cnblogs');
    expect(withReq.name).toBe('cnblogs');
  });

  it('computes c_hash as the left half of SHA-256 (the example in the provider document)', () => {
    expect(oidcHalfHash('c38fee53637dea2967f123e1c92184d854b03db03dcd87323ea60675b8125b2e')).toBe('SmFwmFTxanH8jku7UnWxlQ');
    expect(oidcHalfHash('abc', 'RS512')).toHaveLength(43);
  });
});

/** A scriptable provider: discovery, a JWKS of a key the test signs with, and recorded requests. */
interface FakeProvider {
  url: string;
  requests: Array<{ method: string; path: string; headers: IncomingHttpHeaders; body: string }>;
  answers: Map<string, () => { status: number; body: string }>;
  jwksHits: number;
  sign(claims: JWTPayload, kid?: string): Promise<string>;
  close(): Promise<void>;
}

async function startFakeProvider(): Promise<FakeProvider> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'key-1', alg: 'RS256', use: 'sig' };
  const fake: Omit<FakeProvider, 'url' | 'close' | 'sign'> = { requests: [], answers: new Map(), jwksHits: 0 };
  let url = '';
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      fake.requests.push({ method: req.method ?? '', path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      let out: { status: number; body: string };
      const scripted = fake.answers.get(path);
      if (path === '/.well-known/openid-configuration' && scripted) {
        out = scripted();
      } else if (path === '/.well-known/openid-configuration') {
        out = {
          status: 200,
          body: JSON.stringify({
            issuer: url,
            authorization_endpoint: `${url}/connect/authorize`,
            token_endpoint: `${url}/connect/token`,
            userinfo_endpoint: `${url}/connect/userinfo`,
            revocation_endpoint: `${url}/connect/revocation`,
            jwks_uri: `${url}/jwks`,
            id_token_signing_alg_values_supported: ['RS256'],
          }),
        };
      } else if (path === '/jwks') {
        fake.jwksHits += 1;
        out = fake.answers.get(path)?.() ?? { status: 200, body: JSON.stringify({ keys: [jwk] }) };
      } else {
        out = fake.answers.get(path)?.() ?? { status: 404, body: '{"error":"not_found"}' };
      }
      res.writeHead(out.status, { 'content-type': 'application/json' });
      res.end(out.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(fake, {
    url,
    sign: (claims: JWTPayload, kid = 'key-1') =>
      new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(privateKey as CryptoKey),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}

describe('cnblogs wire protocol (against a scripted provider)', () => {
  let fake: FakeProvider;
  let options: CnblogsOptions;
  const now = () => Math.floor(Date.now() / 1000);
  const claims = (extra: JWTPayload = {}): JWTPayload => ({ iss: fake.url, aud: 'client-1', sub: 'user-1', iat: now(), exp: now() + 300, ...extra });

  beforeEach(async () => {
    fake = await startFakeProvider();
    options = { ...base, clientID: 'client 1', issuer: fake.url, responseType: 'code' };
  });
  afterEach(async () => {
    await fake.close();
  });

  it('posts the code exchange as a form with client_secret_post and the PKCE verifier', async () => {
    const idToken = await fake.sign(claims({ aud: 'client 1', nonce: 'n-1' }));
    fake.answers.set('/connect/token', () => ({
      status: 200,
      body: JSON.stringify({ id_token: idToken, access_token: 'at', expires_in: 86400, token_type: 'Bearer', refresh_token: 'rt', scope: 'openid profile CnBlogsApi offline_access' }),
    }));
    const provider = createCnblogsProvider();
    const callback = { code: 'the-code', state: 'st', all: { code: 'the-code', state: 'st' } };
    const redirectUri = 'https://app.example/auth/cnblogs/callback';
    await provider.checkCallback!(options, callback, { state: 'st', nonce: 'n-1', redirectUri });
    const set = await provider.requestToken(options, { grantType: 'authorization_code', code: 'the-code', redirectUri, codeVerifier: 'the-verifier', callback });
    expect(set).toMatchObject({ accessToken: 'at', refreshToken: 'rt', idToken, tokenType: 'Bearer', scope: 'openid profile CnBlogsApi offline_access' });
    const sent = fake.requests.find((r) => r.path === '/connect/token')!;
    expect(sent.method).toBe('POST');
    expect(sent.headers['content-type']).toMatch(/^application\/x-www-form-urlencoded\b/);
    expect(sent.headers['authorization']).toBeUndefined();
    expect(Object.fromEntries(new URLSearchParams(sent.body))).toEqual({
      grant_type: 'authorization_code',
      code: 'the-code',
      redirect_uri: redirectUri,
      code_verifier: 'the-verifier',
      client_id: 'client 1',
      client_secret: 'secret-1',
    });
  });

  it('refreshes with grant_type=refresh_token and checks the refreshed id_token is about the same user', async () => {
    const previous: TokenSet = { accessToken: 'old', tokenType: 'Bearer', expiresAt: 0, refreshToken: 'rt-1', idToken: await fake.sign(claims()), extras: {}, obtainedAt: 0 };
    let sub = 'user-1';
    const answer = async () => {
      const idToken = await fake.sign(claims({ aud: 'client 1', sub }));
      fake.answers.set('/connect/token', () => ({
        status: 200,
        body: JSON.stringify({ id_token: idToken, access_token: 'at-2', expires_in: 86400, token_type: 'Bearer', refresh_token: 'rt-2' }),
      }));
    };
    const provider = createCnblogsProvider();
    await answer();
    const set = await provider.requestToken(options, { grantType: 'refresh_token', refreshToken: 'rt-1', previous });
    expect(set.accessToken).toBe('at-2');
    const sent = fake.requests.filter((r) => r.path === '/connect/token').at(-1)!;
    expect(Object.fromEntries(new URLSearchParams(sent.body))).toEqual({
      grant_type: 'refresh_token',
      refresh_token: 'rt-1',
      client_id: 'client 1',
      client_secret: 'secret-1',
    });

    sub = 'someone-else';
    await answer();
    const error = await rejection(provider.requestToken(options, { grantType: 'refresh_token', refreshToken: 'rt-1', previous }));
    expect(error.code).toBe(ErrorCodes.ID_TOKEN_INVALID);
    expect(error.message).toMatch(/another user/);
  });

  it('gives a clear error for the malformed body the document shows, and for a bare invalid_grant', async () => {
    const seedTypo =
      '{\n "id_token":"oS8P","access_token": "oS8P",\n "expires_in": 86400,\n "token_type": "Bearer",\n "refresh_token":"oS8PzTN9" "oS8PzTN9"\n}';
    fake.answers.set('/connect/token', () => ({ status: 200, body: seedTypo }));
    const provider = createCnblogsProvider();
    const refresh = { grantType: 'refresh_token', refreshToken: 'rt', previous: { accessToken: 'a', tokenType: 'Bearer', expiresAt: 0, extras: {}, obtainedAt: 0 } } as const;
    const malformed = await rejection(provider.requestToken(options, refresh));
    expect(malformed.code).toBe(ErrorCodes.TOKEN_RESPONSE_MALFORMED);
    expect(malformed.message).not.toContain('oS8P');

    fake.answers.set('/connect/token', () => ({ status: 400, body: '{"error":"invalid_grant"}' }));
    const refused = await rejection(provider.requestToken(options, refresh));
    expect(refused.code).toBe(ErrorCodes.TOKEN_ENDPOINT_FAILED);
    expect(refused.oauthError).toBe('invalid_grant');
    expect(refused.transient).toBe(false);
  });

  it('revokes at the discovered endpoint with HTTP Basic client authentication (RFC 7009)', async () => {
    fake.answers.set('/connect/revocation', () => ({ status: 200, body: '' }));
    const provider = createCnblogsProvider();
    await provider.revoke!(options, { accessToken: 'at', refreshToken: 'rt', tokenType: 'Bearer', expiresAt: null, extras: {}, obtainedAt: 0 });
    const sent = fake.requests.find((r) => r.path === '/connect/revocation')!;
    expect(sent.headers['authorization']).toBe(`Basic ${Buffer.from('client+1:secret-1').toString('base64')}`);
    expect(Object.fromEntries(new URLSearchParams(sent.body))).toEqual({ token: 'rt', token_type_hint: 'refresh_token' });
  });

  it('fetches discovery once for concurrent logins and forgets a failed fetch', async () => {
    const provider = createCnblogsProvider();
    const context = { redirectUri: 'https://app.example/cb', state: 's', scope: 'openid', nonce: 'n', codeChallenge: 'c' };
    const urls = await Promise.all([1, 2, 3].map(() => provider.authorizationURL(options, context)));
    expect(urls.map((u) => u.origin + u.pathname)).toEqual(Array(3).fill(`${fake.url}/connect/authorize`));
    expect(fake.requests.filter((r) => r.path === '/.well-known/openid-configuration')).toHaveLength(1);

    const other = createCnblogsProvider();
    fake.answers.set('/.well-known/openid-configuration', () => {
      fake.answers.delete('/.well-known/openid-configuration');
      return { status: 503, body: '{"error":"unavailable"}' };
    });
    const failed = await rejection(Promise.resolve(other.authorizationURL(options, context)));
    expect(failed.code).toBe(ErrorCodes.PROVIDER_ERROR);
    expect(failed.transient).toBe(true);
    expect(failed.message).toMatch(/HTTP 503.*issuer option/);
    // Evicted: the next login fetches again instead of replaying the failure, then it is cached.
    await other.authorizationURL(options, context);
    await other.authorizationURL(options, context);
    expect(fake.requests.filter((r) => r.path === '/.well-known/openid-configuration')).toHaveLength(3);

    const unreachable = await rejection(Promise.resolve(other.authorizationURL({ ...options, issuer: 'http://127.0.0.1:9' }, context)));
    expect(unreachable.code).toBe(ErrorCodes.PROVIDER_ERROR);
    expect(unreachable.transient).toBe(true);
    expect(unreachable.message).toMatch(/could not be fetched.*issuer option/);
  });

  it('refuses a discovery document that names another issuer', async () => {
    const error = await rejection(fetchCnblogsMetadata(fake.url.replace('127.0.0.1', 'localhost')));
    expect(error.code).toBe(ErrorCodes.PROVIDER_ERROR);
    expect(error.message).toMatch(/Set the issuer option to exactly/);
  });

  describe('id_token verification (openid-client, and our checks beyond it)', () => {
    const redirectUri = 'https://app.example/auth/cnblogs/callback';
    const facts = { state: 'st-1', nonce: 'n-1', redirectUri };

    /** One login: the callback (hybrid: with `front` as its id_token) and a token endpoint answering `idToken`. */
    const login = async (
      idToken: string,
      { front, hybrid = front !== undefined, provider = createCnblogsProvider(), accessToken = 'at-1', code = 'code-1', extra = {} }: {
        front?: string;
        extra?: Partial<CnblogsOptions>;
        hybrid?: boolean;
        provider?: ReturnType<typeof createCnblogsProvider>;
        accessToken?: string;
        code?: string;
      } = {},
    ) => {
      fake.answers.set('/connect/token', () => ({ status: 200, body: JSON.stringify({ id_token: idToken, access_token: accessToken, token_type: 'Bearer', expires_in: 3600 }) }));
      const opts: CnblogsOptions = { ...base, issuer: fake.url, ...extra, ...(hybrid ? { responseType: 'code id_token', responseMode: 'form_post' } : { responseType: 'code' }) };
      const callback = { code, state: 'st-1', all: { code, state: 'st-1', ...(front === undefined ? {} : { id_token: front }) } };
      await provider.checkCallback!(opts, callback, facts);
      const tokenSet = await provider.requestToken(opts, { grantType: 'authorization_code', code, redirectUri, callback });
      return provider.validateTokenSet!(opts, tokenSet, facts, callback);
    };
    const tokenCalls = () => fake.requests.filter((r) => r.path === '/connect/token').length;

    it('returns the claims of a good token and checks nonce, c_hash and at_hash', async () => {
      const token = await fake.sign(claims({ nonce: 'n-1', c_hash: oidcHalfHash('code-1'), at_hash: oidcHalfHash('at-1') }));
      expect(await login(token)).toMatchObject({ sub: 'user-1', nonce: 'n-1' });
      const badAt = await rejection(login(token, { accessToken: 'another' }));
      expect(badAt.code).toBe(ErrorCodes.ID_TOKEN_INVALID);
      expect(badAt.message).toMatch(/at_hash/);
      const hybrid = await login(token, { front: await fake.sign(claims({ nonce: 'n-1', c_hash: oidcHalfHash('code-1') })) });
      expect(hybrid).toMatchObject({ sub: 'user-1' });
    });

    it.each([
      ['no c_hash on a hybrid answer', { nonce: 'n-1' }, 'callback', ErrorCodes.ID_TOKEN_CODE_HASH_MISMATCH, 400],
      ['several audiences without azp', { nonce: 'n-1', aud: ['client-1', 'other'] }, 'token', ErrorCodes.ID_TOKEN_AUDIENCE_MISMATCH, 502],
      ['no sub', { nonce: 'n-1', sub: undefined }, 'token', ErrorCodes.ID_TOKEN_INVALID, 502],
      ['a missing nonce', {}, 'token', ErrorCodes.ID_TOKEN_NONCE_MISMATCH, 502],
      ['iss', { nonce: 'n-1', iss: 'https://oauth.cnblogs.com', c_hash: oidcHalfHash('code-1') }, 'callback', ErrorCodes.ID_TOKEN_ISSUER_MISMATCH, 400],
      ['an iat in the future', { nonce: 'n-1', c_hash: oidcHalfHash('code-1'), iat: Math.floor(Date.now() / 1000) + 3600 }, 'callback', ErrorCodes.ID_TOKEN_INVALID, 400],
    ] as const)('refuses %s', async (_label, extra, where, code, status) => {
      const token = await fake.sign(claims(extra as JWTPayload));
      const good = await fake.sign(claims({ nonce: 'n-1' }));
      const error = await rejection(where === 'callback' ? login(good, { front: token }) : login(token));
      expect(error.code).toBe(code);
      expect(error.status).toBe(status);
      expect(error.message).toContain(where === 'callback' ? 'callback' : 'token response');
      expect(error.message).not.toContain(token);
      expect(error.message).not.toContain(token.split('.')[1]!);
      // A bad front-channel id_token spends no code.
      expect(tokenCalls()).toBe(where === 'callback' ? 0 : 1);
    });

    it('refuses an unsigned or HMAC token and a malformed one', async () => {
      const [header, payload] = (await fake.sign(claims({ nonce: 'n-1', c_hash: oidcHalfHash('code-1') }))).split('.') as [string, string];
      const good = await fake.sign(claims({ nonce: 'n-1' }));
      const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`;
      expect((await rejection(login(good, { front: none }))).code).toBe(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID);
      const hs = await new SignJWT(claims({ nonce: 'n-1', c_hash: oidcHalfHash('code-1') }))
        .setProtectedHeader({ alg: 'HS256', kid: 'key-1' })
        .sign(new TextEncoder().encode('x'.repeat(32)));
      expect((await rejection(login(good, { front: hs }))).code).toBe(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID);
      expect((await rejection(login(good, { front: `${header}.not-json` }))).code).toBe(ErrorCodes.ID_TOKEN_INVALID);
      // The token endpoint's id_token is signature-checked too (openid-client's non-repudiation checks).
      const forged = `${good.split('.').slice(0, 2).join('.')}.${Buffer.from('forged').toString('base64url')}`;
      expect((await rejection(login(forged))).code).toBe(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID);
      expect(tokenCalls()).toBe(1);
    });

    it('downloads the keys again for an unknown kid, but not within the cooldown', async () => {
      const strict = createCnblogsProvider();
      const token = await fake.sign(claims({ nonce: 'n-1' }));
      await login(token, { provider: strict });
      expect(fake.jwksHits).toBe(1);
      const unknown = await fake.sign(claims({ nonce: 'n-1' }), 'key-unknown');
      const opts: CnblogsOptions = { ...base, issuer: fake.url, jwksCooldownSeconds: 60, responseType: 'code' };
      const callback = { code: 'code-1', state: 'st-1', all: { code: 'code-1', state: 'st-1' } };
      fake.answers.set('/connect/token', () => ({ status: 200, body: JSON.stringify({ id_token: unknown, access_token: 'at-1', token_type: 'Bearer' }) }));
      await strict.checkCallback!(opts, callback, facts);
      const error = await rejection(strict.requestToken(opts, { grantType: 'authorization_code', code: 'code-1', redirectUri, callback }));
      expect(error.code).toBe(ErrorCodes.ID_TOKEN_SIGNATURE_INVALID);
      expect(error.message).toMatch(/kid/);
      expect(fake.jwksHits).toBe(1);
      // With no cooldown, an unknown kid downloads the key set again (once per login here).
      const eager = createCnblogsProvider();
      await login(token, { provider: eager, extra: { jwksCooldownSeconds: 0 } });
      expect(fake.jwksHits).toBe(2);
      await rejection(login(unknown, { provider: eager, extra: { jwksCooldownSeconds: 0 } }));
      expect(fake.jwksHits).toBe(3);
    });

    it('reports an unreachable JWKS as a transient provider error, not a bad token, and spends no code', async () => {
      fake.answers.set('/jwks', () => ({ status: 503, body: '{}' }));
      const error = await rejection(login(await fake.sign(claims({ nonce: 'n-1' }))));
      expect(error.code).toBe(ErrorCodes.PROVIDER_ERROR);
      expect(error.transient).toBe(true);
      expect(tokenCalls()).toBe(0);
    });
  });
});

describe('cnblogs sandbox', () => {
  let sandbox: CnblogsSandbox;
  const client = { client_id: 'sandbox-client', client_secret: 'sandbox-secret' };
  const redirectUri = 'http://127.0.0.1:1/auth/cnblogs/callback';

  beforeEach(async () => {
    sandbox = await startCnblogsSandbox();
  });
  afterEach(async () => {
    await sandbox.close();
  });

  const authorizeURL = (params: Record<string, string>) => {
    const url = new URL('/connect/authorize', sandbox.url);
    const all = { client_id: 'sandbox-client', redirect_uri: redirectUri, scope: 'openid profile CnBlogsApi offline_access', state: 'st', ...params };
    for (const [k, v] of Object.entries(all)) url.searchParams.set(k, v);
    return url;
  };
  const token = (body: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(new URL('/connect/token', sandbox.url), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(body).toString(),
    });

  /** Logs in through the sandbox's own login page and returns where it sends the browser. */
  async function approve(params: Record<string, string>): Promise<Response> {
    const page = await fetch(authorizeURL(params));
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('action="/connect/authorize"');
    const hidden = Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1]!, m[2]!.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))]));
    return fetch(new URL('/connect/authorize', sandbox.url), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...hidden, username: 'alice', password: 'wonderland', decision: 'approve' }).toString(),
    });
  }

  it('publishes an IdentityServer discovery document and an RS256 JWKS with a kid', async () => {
    const doc = (await (await fetch(`${sandbox.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(doc).toMatchObject({
      issuer: sandbox.url,
      jwks_uri: `${sandbox.url}/.well-known/openid-configuration/jwks`,
      authorization_endpoint: `${sandbox.url}/connect/authorize`,
      token_endpoint: `${sandbox.url}/connect/token`,
      userinfo_endpoint: `${sandbox.url}/connect/userinfo`,
      revocation_endpoint: `${sandbox.url}/connect/revocation`,
      response_modes_supported: expect.arrayContaining(['query', 'fragment', 'form_post']),
    });
    const jwks = (await (await fetch(doc['jwks_uri'] as string)).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys).toEqual([expect.objectContaining({ kty: 'RSA', alg: 'RS256', use: 'sig', kid: sandbox.signingKeyId })]);
    expect(sandbox.signingKeyId).toMatch(/^[0-9A-F]{40}$/);
    expect(jwks.keys[0]).not.toHaveProperty('d');
    expect(sandbox.oidcCounters).toEqual({ discovery: 1, jwks: 1 });
  });

  it('answers the hybrid flow in the fragment after the login page, with a documented id_token', async () => {
    const answer = await approve({ response_type: 'code id_token', nonce: 'n-1', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' });
    expect(answer.status).toBe(302);
    const back = new URL(answer.headers.get('location')!);
    expect(back.origin + back.pathname).toBe(redirectUri);
    expect(back.search).toBe('');
    const params = new URLSearchParams(back.hash.slice(1));
    expect([...params.keys()]).toEqual(['code', 'id_token', 'scope', 'state']);
    expect(params.get('code')).toMatch(/^[0-9a-f]{64}$/);
    const claims = decodeJwt(params.get('id_token')!);
    expect(claims).toMatchObject({
      iss: sandbox.url,
      aud: 'sandbox-client',
      nonce: 'n-1',
      c_hash: oidcHalfHash(params.get('code')!),
      idp: 'cnblogs_oauth',
      amr: ['authorization_code'],
      sub: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
    });
    expect(claims.exp! - claims.iat!).toBe(300);
  });

  it('renders form_post as an auto-submitting page and refuses the hybrid flow in the query', async () => {
    sandbox.engine.settings.autoApprove = true;
    const page = await fetch(authorizeURL({ response_type: 'code id_token', response_mode: 'form_post', nonce: 'n' }));
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(`<form method="post" action="${redirectUri}">`);
    expect(html).toMatch(/name="id_token" value="eyJ/);
    expect(html).toContain('document.forms[0].submit()');

    const query = await fetch(authorizeURL({ response_type: 'code id_token', response_mode: 'query', nonce: 'n' }), { redirect: 'manual' });
    expect(new URLSearchParams(new URL(query.headers.get('location')!).hash.slice(1)).get('error')).toBe('invalid_request');
    const noNonce = await fetch(authorizeURL({ response_type: 'code id_token' }), { redirect: 'manual' });
    expect(new URLSearchParams(new URL(noNonce.headers.get('location')!).hash.slice(1)).get('error')).toBe('invalid_request');
    const denied = await fetch(authorizeURL({ response_type: 'token' }), { redirect: 'manual' });
    expect(new URL(denied.headers.get('location')!).searchParams.get('error')).toBe('unsupported_response_type');
  });

  it('returns access_denied when the user denies', async () => {
    const page = await fetch(authorizeURL({ response_type: 'code' }));
    const html = await page.text();
    const hidden = Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1]!, m[2]!]));
    const answer = await fetch(new URL('/connect/authorize', sandbox.url), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...hidden, decision: 'deny' }).toString(),
    });
    const back = new URL(answer.headers.get('location')!);
    expect(Object.fromEntries(back.searchParams)).toEqual({ error: 'access_denied', state: 'st' });
  });

  it('redeems a code once, within PKCE, with bare IdentityServer errors', async () => {
    const verifier = 'v'.repeat(43);
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const answer = await approve({ response_type: 'code', nonce: 'n-2', code_challenge: challenge, code_challenge_method: 'S256' });
    const code = new URL(answer.headers.get('location')!).searchParams.get('code')!;
    const exchange = { ...client, grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier };

    const badClient = await token({ ...exchange, client_secret: 'wrong' });
    expect(badClient.status).toBe(400);
    expect(await badClient.json()).toEqual({ error: 'invalid_client' });

    const ok = await token(exchange);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('cache-control')).toMatch(/no-store/);
    const body = (await ok.json()) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(['id_token', 'access_token', 'expires_in', 'token_type', 'refresh_token', 'scope']);
    expect(body['expires_in']).toBe(86400);
    const idClaims = decodeJwt(body['id_token'] as string);
    expect(idClaims).toMatchObject({ nonce: 'n-2', at_hash: oidcHalfHash(body['access_token'] as string) });
    expect(idClaims).not.toHaveProperty('c_hash');

    const replay = await token(exchange);
    expect(replay.status).toBe(400);
    expect(await replay.json()).toEqual({ error: 'invalid_grant' });

    const refreshed = await token({ ...client, grant_type: 'refresh_token', refresh_token: body['refresh_token'] as string });
    expect(refreshed.status).toBe(200);
    const next = (await refreshed.json()) as Record<string, unknown>;
    expect(next['refresh_token']).not.toBe(body['refresh_token']);
    expect(decodeJwt(next['id_token'] as string)).not.toHaveProperty('nonce');
    expect(sandbox.engine.counters.refresh).toBe(1);
  });

  it('issues no refresh token without offline_access; app tokens get 403 from user APIs', async () => {
    sandbox.engine.settings.autoApprove = true;
    const answer = await fetch(authorizeURL({ response_type: 'code', scope: 'openid CnBlogsApi' }), { redirect: 'manual' });
    const code = new URL(answer.headers.get('location')!).searchParams.get('code')!;
    const body = (await (await token({ ...client, grant_type: 'authorization_code', code, redirect_uri: redirectUri })).json()) as Record<string, unknown>;
    expect(body['access_token']).toBeDefined();
    expect(body).not.toHaveProperty('refresh_token');

    const app = (await (await token({ ...client, grant_type: 'client_credentials' })).json()) as Record<string, unknown>;
    expect(app).not.toHaveProperty('id_token');
    const users = await fetch(`${sandbox.url}/api/users`, { headers: { authorization: `Bearer ${String(app['access_token'])}` } });
    expect(users.status).toBe(403);
    const posts = await fetch(`${sandbox.url}/api/blogs/alice-sandbox/posts?pageIndex=1`, { headers: { authorization: `Bearer ${String(app['access_token'])}` } });
    expect(posts.status).toBe(200);
    expect(await posts.json()).toEqual([expect.objectContaining({ BlogApp: 'alice-sandbox' })]);
  });

  it('answers 401 to a missing, unknown or expired token, and applies injected faults', async () => {
    expect((await fetch(`${sandbox.url}/api/users`)).status).toBe(401);
    const bad = await fetch(`${sandbox.url}/api/users`, { headers: { authorization: 'Bearer nope' } });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');

    sandbox.engine.settings.autoApprove = true;
    const answer = await fetch(authorizeURL({ response_type: 'code' }), { redirect: 'manual' });
    const code = new URL(answer.headers.get('location')!).searchParams.get('code')!;
    const body = (await (await token({ ...client, grant_type: 'authorization_code', code, redirect_uri: redirectUri })).json()) as Record<string, unknown>;
    const auth = { authorization: `Bearer ${String(body['access_token'])}` };
    expect((await fetch(`${sandbox.url}/connect/userinfo`, { headers: auth })).status).toBe(200);
    sandbox.engine.expireAccessTokens();
    expect((await fetch(`${sandbox.url}/api/users/v2`, { headers: auth })).status).toBe(401);

    sandbox.engine.injectFault('token', { status: 503 });
    expect((await token({ ...client, grant_type: 'client_credentials' })).status).toBe(503);
    sandbox.injectOidcFault('discovery', { status: 500 });
    expect((await fetch(`${sandbox.url}/.well-known/openid-configuration`)).status).toBe(500);
    expect((await fetch(`${sandbox.url}/.well-known/openid-configuration`)).status).toBe(200);
  });

  it('keeps the previous key published after a rotation (rollover)', async () => {
    const first = sandbox.signingKeyId;
    const second = await sandbox.rotateSigningKey();
    const jwks = (await (await fetch(`${sandbox.url}/.well-known/openid-configuration/jwks`)).json()) as { keys: Array<{ kid: string }> };
    expect(jwks.keys.map((k) => k.kid)).toEqual([first, second]);
  });

  it('revokes with Basic client authentication', async () => {
    const app = (await (await token({ ...client, grant_type: 'client_credentials' })).json()) as Record<string, unknown>;
    const revoke = (headers: Record<string, string>) =>
      fetch(`${sandbox.url}/connect/revocation`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams({ token: String(app['access_token']), token_type_hint: 'access_token' }).toString(),
      });
    expect((await revoke({ authorization: `Basic ${Buffer.from('sandbox-client:wrong').toString('base64')}` })).status).toBe(400);
    expect((await revoke({ authorization: `Basic ${Buffer.from('sandbox-client:sandbox-secret').toString('base64')}` })).status).toBe(200);
    const after = await fetch(`${sandbox.url}/api/blogs/alice-sandbox/posts`, { headers: { authorization: `Bearer ${String(app['access_token'])}` } });
    expect(after.status).toBe(401);
  });
});
