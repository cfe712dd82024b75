import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Passport } from 'passport';
import { ErrorCodes, OAuthKeeperError } from '../../../src/errors';
import { MemoryBackend, oauthKeeper, TokenStore } from '../../../src/index';
import type { TokenSet } from '../../../src/lib/token-set';
import { readTokenResponse } from '../../../src/provider/standard';
import type { ApiRequest, CallbackParams } from '../../../src/provider/types';
import {
  attachDiCredentials,
  DI_DEFAULT_BASE_URL,
  diProvider,
  DiStrategy,
  isDiTokenRejected,
  unwrapDiTokenResponse,
  type DiOptions,
} from '../../../src/providers/di';

const SECRET = 'di-client-secret-value';

function options(extra: Partial<DiOptions> = {}): DiOptions {
  return { clientID: 'di-client', clientSecret: SECRET, callbackURL: 'http://app.test/auth/di/callback', ...extra };
}

function tokenSet(extra: Partial<TokenSet> = {}): TokenSet {
  return {
    accessToken: '95b02c41-0003-4733-b0b1-e73ab728e5cf',
    tokenType: 'bearer',
    expiresAt: Date.now() + 3600_000,
    refreshToken: 'a3b28576-5c31-4a13-b90b-e9a3696983d6',
    scope: 'read_cn',
    extras: {},
    obtainedAt: Date.now(),
    ...extra,
  };
}

const callback: CallbackParams = { code: 'SgQ2QO', all: { code: 'SgQ2QO' } };

/** A local stand-in for the token endpoint that records what it received. */
interface Captured {
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  body: string;
}

let server: Server;
let base: string;
let captured: Captured[] = [];
let answer: { status: number; body: string } = { status: 200, body: '{}' };

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      captured.push({
        method: req.method ?? '',
        url: new URL(req.url ?? '/', 'http://capture.invalid'),
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      res.writeHead(answer.status, { 'content-type': 'application/json;charset=UTF-8', 'cache-control': 'no-store', pragma: 'no-cache' });
      res.end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  captured = [];
});

const realAnswer = {
  access_token: '95b02c41-0003-4733-b0b1-e73ab728e5cf',
  token_type: 'bearer',
  refresh_token: 'a3b28576-5c31-4a13-b90b-e9a3696983d6',
  expires_in: 101837,
  scope: 'read_cn',
};

describe('di token responses', () => {
  const shapes = [
    ['object', 'number', realAnswer],
    ['object', 'string', { ...realAnswer, expires_in: '101837' }],
    ['array', 'number', [realAnswer]],
    ['array', 'string', [{ ...realAnswer, expires_in: '101837' }]],
  ] as const;

  it.each(shapes)('parses a %s answer with expires_in as a %s', async (_shape, _type, body) => {
    answer = { status: 200, body: JSON.stringify(body) };
    const set = await diProvider.requestToken(options({ baseURL: base }), {
      grantType: 'authorization_code',
      code: 'SgQ2QO',
      redirectUri: 'http://app.test/auth/di/callback',
      callback,
    });
    expect(set.accessToken).toBe(realAnswer.access_token);
    expect(set.refreshToken).toBe(realAnswer.refresh_token);
    expect(set.tokenType).toBe('bearer');
    expect(set.scope).toBe('read_cn');
    expect(set.expiresAt! - set.obtainedAt).toBe(101837 * 1000);
    expect(set.extras).toEqual({});
  });

  it.each(shapes)('unwrapDiTokenResponse + readTokenResponse read a %s answer with a %s lifetime', (_shape, _type, body) => {
    const set = readTokenResponse({ provider: 'di', unwrap: unwrapDiTokenResponse }, 200, JSON.stringify(body));
    expect(set.accessToken).toBe(realAnswer.access_token);
    expect(set.expiresAt! - set.obtainedAt).toBe(101837 * 1000);
  });

  it('keeps anything that is not an array as it is', () => {
    const value = { a: 1 };
    expect(unwrapDiTokenResponse(value)).toBe(value);
    expect(unwrapDiTokenResponse('text')).toBe('text');
    expect(unwrapDiTokenResponse([])).toBeUndefined();
  });

  it('refuses an empty array and a non-numeric lifetime as malformed, without echoing the body', async () => {
    for (const body of [[], [{ ...realAnswer, expires_in: 'seven days' }]]) {
      answer = { status: 200, body: JSON.stringify(body) };
      const error = await diProvider
        .requestToken(options({ baseURL: base }), { grantType: 'authorization_code', code: 'SgQ2QO', redirectUri: 'http://app.test/cb', callback })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OAuthKeeperError);
      expect((error as OAuthKeeperError).code).toBe(ErrorCodes.TOKEN_RESPONSE_MALFORMED);
      expect((error as OAuthKeeperError).message).not.toContain(realAnswer.access_token);
      expect(JSON.stringify(error)).not.toContain(realAnswer.access_token);
    }
  });

  it("turns Spring's invalid_grant into TOKEN_ENDPOINT_FAILED without the code or the secret in the message", async () => {
    answer = { status: 400, body: JSON.stringify({ error: 'invalid_grant', error_description: 'Invalid authorization code: SgQ2QO' }) };
    const error = (await diProvider
      .requestToken(options({ baseURL: base }), { grantType: 'authorization_code', code: 'SgQ2QO', redirectUri: 'http://app.test/cb', callback })
      .catch((e: unknown) => e)) as OAuthKeeperError;
    expect(error.code).toBe(ErrorCodes.TOKEN_ENDPOINT_FAILED);
    expect(error.oauthError).toBe('invalid_grant');
    expect(error.transient).toBe(false);
    expect(error.message).not.toContain('SgQ2QO');
    expect(error.message).not.toContain(SECRET);
    expect(JSON.stringify(error)).not.toContain(SECRET);
  });
});

describe('di token request placement', () => {
  it('sends every code-exchange parameter, the secret included, in the query string with an empty body', async () => {
    answer = { status: 200, body: JSON.stringify(realAnswer) };
    await diProvider.requestToken(options({ baseURL: `${base}/` }), {
      grantType: 'authorization_code',
      code: 'SgQ2QO',
      redirectUri: 'http://app.test/auth/di/callback',
      callback,
    });
    expect(captured).toHaveLength(1);
    const req = captured[0]!;
    expect(req.method).toBe('POST');
    expect(req.url.pathname).toBe('/oauth/token');
    expect(Object.fromEntries(req.url.searchParams)).toEqual({
      grant_type: 'authorization_code',
      code: 'SgQ2QO',
      redirect_uri: 'http://app.test/auth/di/callback',
      client_id: 'di-client',
      client_secret: SECRET,
    });
    expect(req.body).toBe('');
    expect(req.headers['content-type']).toBeUndefined();
    expect(req.headers['authorization']).toBeUndefined();
    expect(req.url.searchParams.has('code_verifier')).toBe(false);
  });

  it('sends the refresh parameters in the query string, without redirect_uri, and keeps the rotated refresh token', async () => {
    answer = { status: 200, body: JSON.stringify([{ ...realAnswer, access_token: 'new-access', refresh_token: 'new-refresh', expires_in: '604800' }]) };
    const strategy = new DiStrategy(options({ baseURL: base }));
    const previous = tokenSet({ refreshToken: 'old-refresh' });
    const next = await strategy.tokens.refresh(previous);
    const req = captured[0]!;
    expect(req.method).toBe('POST');
    expect(req.url.pathname).toBe('/oauth/token');
    expect(Object.fromEntries(req.url.searchParams)).toEqual({
      grant_type: 'refresh_token',
      refresh_token: 'old-refresh',
      client_id: 'di-client',
      client_secret: SECRET,
    });
    expect(req.body).toBe('');
    expect(next.accessToken).toBe('new-access');
    expect(next.refreshToken).toBe('new-refresh');
    expect(next.expiresAt! - next.obtainedAt).toBe(604800 * 1000);
  });
});

describe('di authorization URL', () => {
  it('builds GET {base}/oauth/authorize with the code flow, the default scope and the state, and no PKCE', async () => {
    const url = await diProvider.authorizationURL(options(), { redirectUri: 'http://app.test/auth/di/callback', state: 'st-1', scope: 'read_cn' });
    expect(`${url.origin}${url.pathname}`).toBe(`${DI_DEFAULT_BASE_URL}/oauth/authorize`);
    expect(Object.fromEntries(url.searchParams)).toEqual({
      client_id: 'di-client',
      redirect_uri: 'http://app.test/auth/di/callback',
      response_type: 'code',
      scope: 'read_cn',
      state: 'st-1',
    });
    expect(diProvider.pkce).toBe(false);
    expect(diProvider.defaultScope).toEqual(['read_cn']);
  });

  it('follows a configured baseURL, with or without a trailing slash', async () => {
    for (const baseURL of ['http://di.example:8080', 'http://di.example:8080/', 'http://di.example:8080/platform/']) {
      const url = await diProvider.authorizationURL(options({ baseURL }), { redirectUri: 'http://app.test/cb', state: 's', scope: 'read_ep' });
      expect(url.toString().startsWith(`${baseURL.replace(/\/+$/, '')}/oauth/authorize?`)).toBe(true);
      expect(url.searchParams.get('scope')).toBe('read_ep');
      expect(diProvider.api!.baseURL(options({ baseURL }))).toBe(`${baseURL.replace(/\/+$/, '')}/api`);
    }
    expect(diProvider.api!.baseURL(options())).toBe('http://114.251.8.193/api');
  });

  it('declares no revocation and no user-info endpoint', () => {
    expect(diProvider.revoke).toBeUndefined();
    expect(diProvider.userProfile).toBeUndefined();
    expect(Object.isFrozen(diProvider)).toBe(true);
    expect(diProvider.name).toBe('di');
  });
});

describe('di API credentials', () => {
  const apiBase = 'http://di.example/api';
  function request(method: string, path: string, body?: string, contentType?: string): ApiRequest {
    const headers = new Headers();
    if (contentType !== undefined) headers.set('content-type', contentType);
    if (body !== undefined) headers.set('content-length', String(Buffer.byteLength(body)));
    return { method, url: new URL(`${apiBase}${path}`), headers, ...(body === undefined ? {} : { body: Buffer.from(body) }) };
  }

  it('puts client_id, access_token and scope in the query string of a GET, keeping the other parameters', async () => {
    const out = await diProvider.api!.attach(
      request('GET', '/patent/search/expression?express=%E7%94%B3%E8%AF%B7%E4%BA%BA%3D(%E5%8D%8E%E4%B8%BA)&page=1&page_row=10'),
      tokenSet(),
      options(),
    );
    expect(out.url.pathname).toBe('/api/patent/search/expression');
    expect(Object.fromEntries(out.url.searchParams)).toEqual({
      express: '申请人=(华为)',
      page: '1',
      page_row: '10',
      client_id: 'di-client',
      access_token: tokenSet().accessToken,
      scope: 'read_cn',
    });
    expect(out.body).toBeUndefined();
    expect(out.headers.get('authorization')).toBeNull();
  });

  it("replaces a caller's own credential parameters instead of sending two", () => {
    const out = attachDiCredentials(request('GET', '/patent/detail/catalog?pid=P1&access_token=forged&client_id=other'), tokenSet(), options());
    expect(out.url.searchParams.getAll('access_token')).toEqual([tokenSet().accessToken]);
    expect(out.url.searchParams.getAll('client_id')).toEqual(['di-client']);
    expect(out.url.searchParams.get('pid')).toBe('P1');
  });

  it('appends them to the form body of a POST and leaves the query alone', () => {
    const out = attachDiCredentials(
      request('POST', '/patent/search/expression?lang=cn', 'express=%E5%8D%8E%E4%B8%BA&page=2', 'application/x-www-form-urlencoded'),
      tokenSet(),
      options(),
    );
    expect(out.url.search).toBe('?lang=cn');
    expect(out.headers.get('content-type')).toMatch(/^application\/x-www-form-urlencoded/);
    expect(out.headers.get('content-length')).toBeNull();
    const text = out.body!.toString('utf8');
    expect(text.startsWith('express=%E5%8D%8E%E4%B8%BA&page=2&')).toBe(true);
    expect(Object.fromEntries(new URLSearchParams(text))).toEqual({
      express: '华为',
      page: '2',
      client_id: 'di-client',
      access_token: tokenSet().accessToken,
      scope: 'read_cn',
    });
  });

  it('makes a form body for a POST without one', () => {
    const out = attachDiCredentials(request('POST', '/patent/search/expression'), tokenSet(), options());
    expect(out.headers.get('content-type')).toMatch(/^application\/x-www-form-urlencoded/);
    expect(Object.fromEntries(new URLSearchParams(out.body!.toString('utf8')))).toEqual({
      client_id: 'di-client',
      access_token: tokenSet().accessToken,
      scope: 'read_cn',
    });
    expect(out.url.search).toBe('');
  });

  it('puts them in the query string of a POST whose body is not a form', () => {
    const json = '{"express":"x"}';
    const out = attachDiCredentials(request('POST', '/patent/search/expression', json, 'application/json'), tokenSet(), options());
    expect(out.body!.toString('utf8')).toBe(json);
    expect(out.headers.get('content-type')).toBe('application/json');
    expect(out.url.searchParams.get('access_token')).toBe(tokenSet().accessToken);
  });

  it("sends the token set's scope, else the configured scope, else read_cn", () => {
    const withoutScope = tokenSet();
    delete withoutScope.scope;
    expect(attachDiCredentials(request('GET', '/x'), tokenSet({ scope: 'read_ep' }), options()).url.searchParams.get('scope')).toBe('read_ep');
    expect(attachDiCredentials(request('GET', '/x'), withoutScope, options({ scope: ['read_tw', 'read_jp'] })).url.searchParams.get('scope')).toBe('read_tw read_jp');
    expect(attachDiCredentials(request('GET', '/x'), withoutScope, options({ scope: 'read_jp' })).url.searchParams.get('scope')).toBe('read_jp');
    expect(attachDiCredentials(request('GET', '/x'), withoutScope, options()).url.searchParams.get('scope')).toBe('read_cn');
  });
});

describe('di token rejection', () => {
  const headers = new Headers();
  it.each([
    ['HTTP 401 invalid_token', 401, true, { error: 'invalid_token', error_description: 'Invalid access token: 95b02c…' }],
    ['invalid_token with another status', 400, true, { error: 'invalid_token' }],
    ['HTTP 401 whose body was not inspected', 401, true, undefined],
    ['HTTP 401 with a non-JSON body', 401, true, '<html>Unauthorized</html>'],
    ['a business error in a 200 envelope', 200, false, { errorCode: '100001', message: 'express is required' }],
    ['a success envelope', 200, false, { errorCode: '000000', total: 0, context: { records: [] } }],
    ['HTTP 401 unauthorized (no token sent)', 401, false, { error: 'unauthorized', error_description: 'Full authentication is required' }],
    ['HTTP 403 insufficient_scope', 403, false, { error: 'insufficient_scope', scope: 'read_cn' }],
    ['HTTP 500 without a body', 500, false, undefined],
  ] as const)('%s (HTTP %i) → rejected: %s', (_label, status, rejected, body) => {
    expect(diProvider.api!.isTokenRejected({ status, headers, ...(body === undefined ? {} : { body }) })).toBe(rejected);
    expect(isDiTokenRejected({ status, headers, ...(body === undefined ? {} : { body }) })).toBe(rejected);
  });
});

describe('di options', () => {
  const message = (build: () => unknown): string => {
    try {
      build();
    } catch (error) {
      expect(error).toBeInstanceOf(OAuthKeeperError);
      expect((error as OAuthKeeperError).code).toBe(ErrorCodes.CONFIGURATION_INVALID);
      return (error as OAuthKeeperError).message;
    }
    throw new Error('expected a configuration error');
  };

  it('names the missing clientID, clientSecret and callbackURL', () => {
    expect(message(() => new DiStrategy({ ...options(), clientID: '' }))).toMatch(/di strategy needs clientID/);
    const noSecret: DiOptions = { clientID: 'x', callbackURL: '/auth/di/callback' };
    expect(message(() => new DiStrategy(noSecret))).toMatch(/di strategy needs clientSecret/);
    expect(message(() => new DiStrategy({ ...options(), callbackURL: 'auth/di/callback' }))).toMatch(/callbackURL.*"\/auth\/di\/callback"/);
  });

  it('refuses a baseURL that is not an absolute http(s) URL without query or fragment, and says what to give', () => {
    for (const baseURL of ['114.251.8.193', 'ftp://114.251.8.193', 'http://114.251.8.193/?x=1', 'http://114.251.8.193/#top', '']) {
      const text = message(() => new DiStrategy(options({ baseURL })));
      expect(text).toContain("di strategy's baseURL must be an absolute http(s) URL");
      expect(text).toContain(DI_DEFAULT_BASE_URL);
      expect(text).not.toContain(SECRET);
    }
  });

  it('refuses an empty scope and names the default', () => {
    for (const scope of ['', '   ', [] as string[], ['read_cn', '']]) {
      expect(message(() => new DiStrategy(options({ scope })))).toMatch(/di strategy's scope must be .*"read_cn"/);
    }
  });

  it('accepts the documented options and binds the di definition under the name di', () => {
    const strategy = new DiStrategy(options({ baseURL: 'http://114.251.8.193', scope: 'read_cn read_ep' }));
    expect(strategy.name).toBe('di');
    expect(strategy.provider).toBe(diProvider);
    expect(strategy.options.scope).toBe('read_cn read_ep');
    expect(new DiStrategy({ ...options(), name: 'di-ep', scope: ['read_ep'] }).name).toBe('di-ep');
  });

  it('takes a verify callback, with or without the request', () => {
    const plain = new DiStrategy<{ id: string }>(options(), (_tokens, profile, done) => done(null, { id: profile.id }));
    expect(plain.name).toBe('di');
    const withReq = new DiStrategy<{ id: string }>({ ...options(), passReqToCallback: true }, (req, _tokens, profile, done) => {
      done(null, { id: `${req.method}:${profile.id}` });
    });
    expect(withReq.name).toBe('di');
    expect(message(() => new DiStrategy(options(), 'nope' as never))).toMatch(/verify callback must be a function/);
  });
});

describe('di start-up warning', () => {
  const make = (baseURL?: string) =>
    new DiStrategy({ clientID: 'c', clientSecret: 's', callbackURL: '/auth/di/callback', ...(baseURL === undefined ? {} : { baseURL }) });

  function warningsOf(strategy: ReturnType<typeof make>): Array<[string, Record<string, unknown> | undefined]> {
    const warnings: Array<[string, Record<string, unknown> | undefined]> = [];
    oauthKeeper({
      strategies: [strategy],
      store: new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [randomBytes(32)] }),
      passport: new Passport() as never,
      logger: { warn: (message, fields) => warnings.push([message, fields]) },
    });
    return warnings;
  }

  it('says once, through the keeper logger, that the default base URL is plain HTTP, naming baseURL', () => {
    const warnings = warningsOf(make());
    expect(warnings).toEqual([[expect.stringContaining(`baseURL ${DI_DEFAULT_BASE_URL}`), { provider: 'di' }]]);
    expect(warnings[0]![0]).toMatch(/plain HTTP/);
  });

  it('says nothing for an https:// base URL, nor for a sandbox on loopback', () => {
    expect(warningsOf(make('https://di.example.com'))).toEqual([]);
    expect(warningsOf(make('http://127.0.0.1:8080'))).toEqual([]);
    expect(warningsOf(make('http://localhost:8080'))).toEqual([]);
  });
});
