import { createSign, createVerify, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { ErrorCodes, OAuthKeeperError } from '../../../src/errors';
import type { TokenSet } from '../../../src/lib/token-set';
import type { ApiRequest } from '../../../src/provider/types';
import {
  chinaTimestamp,
  extractResponseNode,
  readSopTokenNode,
  signSopParameters,
  sopGatewayParameters,
  sopProvider,
  sopSignContent,
  SopStrategy,
  verifySopResponse,
  type SopOptions,
  type SopSignType,
} from '../../../src/providers/sop/index';
import { rsaKeyPair, type RsaKeyPair } from '../../helpers/keys';
import { sopOfflineOptions } from '../../helpers/providers';

/**
 * A request-signature verifier written from the protocol text alone (not from the
 * strategy's signer): all parameters but `sign`, sorted by name, `name=value` with raw
 * values joined by `&`, RSA over the UTF-8 bytes (SHA-256 for RSA2, SHA-1 for RSA),
 * signature in standard Base64.
 */
function specVerify(params: Record<string, string>, publicKey: KeyObject): boolean {
  const sign = params['sign'];
  if (sign === undefined || !/^[A-Za-z0-9+/]+=*$/.test(sign)) return false;
  const names = Object.keys(params).filter((n) => n !== 'sign');
  names.sort();
  const content = names.map((n) => n + '=' + params[n]).join('&');
  const verifier = createVerify(params['sign_type'] === 'RSA' ? 'sha1WithRSAEncryption' : 'sha256WithRSAEncryption');
  verifier.update(content, 'utf8');
  return verifier.verify(publicKey, sign, 'base64');
}

/** What the platform does: sign the node's exact text and wrap it. */
function platformAnswer(nodeName: string, nodeText: string, key: KeyObject, signType: SopSignType = 'RSA2'): string {
  const signer = createSign(signType === 'RSA' ? 'RSA-SHA1' : 'RSA-SHA256');
  signer.update(nodeText, 'utf8');
  return `{"${nodeName}":${nodeText},"sign":"${signer.sign(key, 'base64')}"}`;
}

let app: RsaKeyPair;
let platform: RsaKeyPair;
let stranger: RsaKeyPair;

beforeAll(() => {
  app = rsaKeyPair();
  platform = rsaKeyPair();
  stranger = rsaKeyPair();
});

function options(extra: Partial<SopOptions> = {}): SopOptions {
  return sopOfflineOptions(app.privatePem, platform.publicPem, extra);
}

function caught(fn: () => unknown): OAuthKeeperError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(OAuthKeeperError);
    return error as OAuthKeeperError;
  }
  throw new Error('expected a throw');
}

describe('sop request signing', () => {
  it('signs every parameter but sign, sorted by name, with raw values and empty ones dropped', () => {
    const content = sopSignContent({
      timestamp: '2019-01-01 08:09:10',
      method: 'goods.get',
      biz_content: '{"goods_name":"iphone 6","url":"http://a.example/?x=1&y=%20"}',
      app_id: '2019032617262200001',
      sign: 'must-not-be-signed',
      charset: 'utf-8',
      app_auth_token: '',
      version: undefined,
      format: null,
      Zeta: 'upper case sorts first',
      name: '名称 ünïcode',
    });
    expect(content).toBe(
      'Zeta=upper case sorts first' +
        '&app_id=2019032617262200001' +
        '&biz_content={"goods_name":"iphone 6","url":"http://a.example/?x=1&y=%20"}' +
        '&charset=utf-8' +
        '&method=goods.get' +
        '&name=名称 ünïcode' +
        '&timestamp=2019-01-01 08:09:10',
    );
  });

  it('never sends empty parameters, and the sign covers exactly what is sent', () => {
    const signed = signSopParameters({ app_id: 'a', method: 'm', app_auth_token: '', biz_content: '{}', sign_type: 'RSA2' }, app.privatePem);
    expect(Object.keys(signed).sort()).toEqual(['app_id', 'biz_content', 'method', 'sign', 'sign_type']);
    expect(specVerify(signed, app.publicKey)).toBe(true);
    expect(specVerify({ ...signed, app_auth_token: '' }, app.publicKey)).toBe(false);
  });

  it.each(['RSA2', 'RSA'] as const)('a %s request signed by the strategy verifies with the app public key under a verifier written from the spec', (signType) => {
    const params = sopGatewayParameters(options({ signType }), 'goods.get', '{"goods_name":"手机 & \\"quoted\\" + plus=sign"}', {
      appAuthToken: 'token-123',
    });
    expect(params['sign_type']).toBe(signType);
    expect(params['sign']).toMatch(/^[A-Za-z0-9+/]+={0,2}$/);
    // The signature survives the form encoding it travels in.
    const received = Object.fromEntries(new URLSearchParams(new URLSearchParams(params).toString()));
    expect(received).toEqual(params);
    expect(specVerify(received, app.publicKey)).toBe(true);
    expect(specVerify(received, stranger.publicKey)).toBe(false);
    expect(specVerify({ ...received, biz_content: '{}' }, app.publicKey)).toBe(false);
    // The digest really differs between the two types.
    expect(specVerify({ ...received, sign_type: signType === 'RSA2' ? 'RSA' : 'RSA2' }, app.publicKey)).toBe(false);
  });

  it('sends the documented common parameters', () => {
    const params = sopGatewayParameters(options(), 'open.auth.token.app', '{"grant_type":"authorization_code","code":"c"}', {
      now: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)),
    });
    const { sign, ...rest } = params;
    expect(sign).toBeDefined();
    expect(rest).toEqual({
      app_id: '2019032617262200001',
      method: 'open.auth.token.app',
      format: 'json',
      charset: 'utf-8',
      sign_type: 'RSA2',
      timestamp: '2024-01-02 11:04:05',
      version: '1.0',
      biz_content: '{"grant_type":"authorization_code","code":"c"}',
    });
  });

  it('accepts bare Base64 keys as SOP consoles hand them out', () => {
    const bare = (pem: string) => pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    const params = sopGatewayParameters(options({ privateKey: bare(app.privatePem), platformPublicKey: bare(platform.publicPem) }), 'goods.get', '{}');
    expect(specVerify(params, app.publicKey)).toBe(true);
  });
});

describe('chinaTimestamp', () => {
  it('formats UTC+8 at a fixed instant, across a day and year boundary', () => {
    expect(chinaTimestamp(new Date(Date.UTC(2024, 11, 31, 16, 30, 5)))).toBe('2025-01-01 00:30:05');
    expect(chinaTimestamp(new Date(Date.UTC(2024, 1, 28, 20, 0, 0)))).toBe('2024-02-29 04:00:00');
    expect(chinaTimestamp(new Date(Date.UTC(2019, 2, 26, 9, 7, 3, 999)))).toBe('2019-03-26 17:07:03');
  });

  it('does not depend on the machine time zone', () => {
    const instant = new Date(Date.UTC(2023, 6, 1, 12, 0, 0));
    const before = process.env['TZ'];
    try {
      process.env['TZ'] = 'America/Los_Angeles';
      const west = chinaTimestamp(instant);
      process.env['TZ'] = 'Asia/Kolkata';
      const east = chinaTimestamp(instant);
      expect(west).toBe('2023-07-01 20:00:00');
      expect(east).toBe(west);
    } finally {
      if (before === undefined) delete process.env['TZ'];
      else process.env['TZ'] = before;
    }
  });
});

describe('extractResponseNode', () => {
  const name = 'open_auth_token_app_response';

  it('returns the exact raw text of the node, not a re-serialization', () => {
    const node = '{ "code" : "10000",\n "msg":"Success", "n": 1.50 }';
    expect(extractResponseNode(`{"${name}": ${node} ,"sign":"abc"}`, name)).toBe(node);
  });

  it('is not fooled by quotes, braces or ,"sign" inside strings', () => {
    const node =
      '{"code":"10000","msg":"a,\\"sign\\":\\"forged\\"}","b":"}}]]{{[[","c":"\\\\","d":"\\\\\\"","e":["x",{"f":"}"}],"g":null,"h":true,"i":-1.5e3}';
    expect(JSON.parse(node)).toBeDefined();
    const body = `{"${name}":${node},"sign":"SIG=="}`;
    expect(extractResponseNode(body, name)).toBe(node);
  });

  it('handles unicode, escapes and the node name mentioned inside another member', () => {
    const node = '{"code":"10000","名称":"中文 😀 \\u4e2d\\ud83d\\ude00","path":"C:\\\\dir\\\\"}';
    const body = `{"note":"\\"${name}\\":{\\"code\\":\\"fake\\"}","sign":"S","${name}":${node}}`;
    expect(extractResponseNode(body, name)).toBe(node);
    expect(JSON.parse(extractResponseNode(body, name)!)).toEqual(JSON.parse(node));
  });

  it('matches an escaped spelling of the key, as JSON does', () => {
    const body = '{"open\\u005fauth_token_app_response":{"code":"10000"},"sign":"S"}';
    expect(extractResponseNode(body, name)).toBe('{"code":"10000"}');
  });

  it('refuses absent, duplicated or malformed input', () => {
    expect(extractResponseNode('{"other_response":{},"sign":"S"}', name)).toBeUndefined();
    expect(extractResponseNode(`{"${name}":{"a":1},"${name}":{"a":2},"sign":"S"}`, name)).toBeUndefined();
    expect(extractResponseNode(`{"${name}":{"a":1},"sign":"S"} trailing`, name)).toBeUndefined();
    expect(extractResponseNode(`{"${name}":{"a":"unterminated},"sign":"S"}`, name)).toBeUndefined();
    expect(extractResponseNode(`{"${name}":{"a":[1}},"sign":"S"}`, name)).toBeUndefined();
    expect(extractResponseNode(`[{"${name}":{}}]`, name)).toBeUndefined();
    expect(extractResponseNode('', name)).toBeUndefined();
    expect(extractResponseNode('{}', name)).toBeUndefined();
  });
});

describe('verifySopResponse', () => {
  const method = 'open.auth.token.app';
  const nodeText = '{"request_id":"r1","code":"10000","msg":"Success","app_auth_token":"AT-1","app_refresh_token":"RT-1","user_id":"1","expires_in":-1,"re_expires_in":-3}';

  it.each(['RSA2', 'RSA'] as const)('accepts a %s answer signed by the platform over the raw node', (signType) => {
    const body = platformAnswer('open_auth_token_app_response', nodeText, platform.privateKey, signType);
    const verified = verifySopResponse(body, method, platform.publicPem, { signType });
    expect(verified.raw).toBe(nodeText);
    expect(verified.node['app_auth_token']).toBe('AT-1');
  });

  it('verifies the raw text even when it is not in canonical JSON form', () => {
    const spaced = '{ "code": "10000", "msg": "Success", "app_auth_token": "AT-1", "n": 1.0 }';
    const body = platformAnswer('open_auth_token_app_response', spaced, platform.privateKey);
    expect(verifySopResponse(body, method, platform.publicKey).node['n']).toBe(1);
  });

  it('refuses a tampered node, a foreign key, a wrong sign type and a missing or garbled signature', () => {
    const body = platformAnswer('open_auth_token_app_response', nodeText, platform.privateKey);
    const tampered = body.replace('"AT-1"', '"AT-2"');
    for (const [input, signType, key] of [
      [tampered, 'RSA2', platform.publicPem],
      [platformAnswer('open_auth_token_app_response', nodeText, stranger.privateKey), 'RSA2', platform.publicPem],
      [body, 'RSA', platform.publicPem],
      [body.replace(/"sign":"[^"]+"/, '"sign":""'), 'RSA2', platform.publicPem],
      [body.replace(/,"sign":"[^"]+"/, ''), 'RSA2', platform.publicPem],
      [body.replace(/"sign":"([^"]+)"/, '"sign":"$1-_"'), 'RSA2', platform.publicPem],
      [body.replace(/"sign":"[^"]+"/, '"sign":12'), 'RSA2', platform.publicPem],
    ] as const) {
      const error = caught(() => verifySopResponse(input, method, key, { signType }));
      expect(error.code).toBe(ErrorCodes.RESPONSE_SIGNATURE_INVALID);
      expect(error.message).not.toContain('AT-');
    }
  });

  it('reads an error_response node and refuses non-answers as malformed', () => {
    const errorNode = '{"code":"40001","msg":"Missing Required Arguments","sub_code":"isv.missing-method","sub_msg":"Missing method"}';
    const verified = verifySopResponse(platformAnswer('error_response', errorNode, platform.privateKey), method, platform.publicKey);
    expect(verified.nodeName).toBe('error_response');
    expect(caught(() => verifySopResponse('<html>502</html>', method, platform.publicKey)).code).toBe(ErrorCodes.TOKEN_RESPONSE_MALFORMED);
    expect(caught(() => verifySopResponse('{"other_response":{},"sign":"x"}', method, platform.publicKey)).code).toBe(ErrorCodes.TOKEN_RESPONSE_MALFORMED);
    expect(
      caught(() => verifySopResponse('{"a":1}', method, platform.publicKey, { malformedCode: ErrorCodes.API_UPSTREAM_FAILED })).code,
    ).toBe(ErrorCodes.API_UPSTREAM_FAILED);
  });
});

describe('the open.auth.token.app node', () => {
  const now = 1_700_000_000_000;
  const success = {
    request_id: 'r',
    code: '10000',
    msg: 'Success',
    app_auth_token: 'AT',
    app_refresh_token: 'RT',
    user_id: '1',
    expires_in: -1,
    re_expires_in: -3,
  };

  it('maps a success; negative lifetimes mean never expires', () => {
    const set = readSopTokenNode(success, 'sop', now);
    expect(set).toEqual<TokenSet>({
      accessToken: 'AT',
      refreshToken: 'RT',
      tokenType: 'app_auth_token',
      expiresAt: null,
      refreshTokenExpiresAt: null,
      extras: { user_id: '1' },
      obtainedAt: now,
    });
  });

  it('treats zero as never and positive lifetimes as real ones', () => {
    expect(readSopTokenNode({ ...success, expires_in: 0, re_expires_in: '0' }, 'sop', now)).toMatchObject({ expiresAt: null, refreshTokenExpiresAt: null });
    expect(readSopTokenNode({ ...success, expires_in: 7200, re_expires_in: '86400' }, 'sop', now)).toMatchObject({
      expiresAt: now + 7200_000,
      refreshTokenExpiresAt: now + 86_400_000,
    });
  });

  it.each(['invalid_request', 'invalid_grant', 'expired_token', 'invalid_token'])('maps "%s" inside a code 10000 envelope', (error) => {
    const failure = caught(() => readSopTokenNode({ code: '10000', msg: 'Success', error, error_description: 'nope' }));
    expect(failure.code).toBe(ErrorCodes.TOKEN_ENDPOINT_FAILED);
    expect(failure.oauthError).toBe(error);
    expect(failure.transient).toBe(false);
  });

  it('treats an error next to a token as a failure, not a success', () => {
    expect(caught(() => readSopTokenNode({ ...success, error: 'invalid_grant' })).oauthError).toBe('invalid_grant');
    expect(caught(() => readSopTokenNode({ ...success, sub_code: 'isv.invalid-parameter' })).code).toBe(ErrorCodes.TOKEN_ENDPOINT_FAILED);
  });

  it('maps gateway sub_codes: isv.* are final, isp.* / 20000 are transient', () => {
    const signature = caught(() => readSopTokenNode({ code: '40002', msg: 'Invalid Arguments', sub_code: 'isv.invalid-signature', sub_msg: 'bad' }));
    expect(signature.code).toBe(ErrorCodes.TOKEN_ENDPOINT_FAILED);
    expect(signature.oauthError).toBe('isv.invalid-signature');
    expect(signature.transient).toBe(false);
    expect(signature.message).toMatch(/privateKey/);
    const unknown = caught(() => readSopTokenNode({ code: '20000', msg: 'Service Currently Unavailable', sub_code: 'isp.unknown-error' }));
    expect(unknown.code).toBe(ErrorCodes.TOKEN_ENDPOINT_FAILED);
    expect(unknown.transient).toBe(true);
    expect(caught(() => readSopTokenNode({ code: '40001', msg: 'x' })).code).toBe(ErrorCodes.TOKEN_ENDPOINT_FAILED);
  });

  it('calls a success without app_auth_token malformed', () => {
    expect(caught(() => readSopTokenNode({ code: '10000', msg: 'Success', user_id: '1' })).code).toBe(ErrorCodes.TOKEN_RESPONSE_MALFORMED);
  });
});

describe('the sop provider definition', () => {
  it('declares its protocol as data', () => {
    expect(sopProvider.name).toBe('sop');
    expect(sopProvider.pkce).toBe(false);
    expect(sopProvider.nonce).toBe(false);
    expect(sopProvider.stateTransport).toEqual({ kind: 'redirect_uri', parameter: 'oauth_keeper_state' });
    expect(sopProvider.defaultScope).toEqual([]);
    expect(sopProvider.revoke).toBeUndefined();
    expect(sopProvider.api?.baseURL(options())).toBe('https://open.example.com/');
  });

  it('builds the appToAppAuth URL with app_id and the encoded redirect_uri only', async () => {
    const url = await sopProvider.authorizationURL(options({ authURL: 'https://openauth.example.com/base/' }), {
      redirectUri: 'http://localhost:8087/oauth2callback?oauth_keeper_state=abc',
      state: 'abc',
      scope: '',
    });
    expect(url.toString()).toBe(
      'https://openauth.example.com/base/oauth2/appToAppAuth?app_id=2019032617262200001&redirect_uri=http%3A%2F%2Flocalhost%3A8087%2Foauth2callback%3Foauth_keeper_state%3Dabc',
    );
  });

  it('checks the returned app_id', () => {
    const check = (all: Record<string, string>) => sopProvider.checkCallback!(options(), { code: 'c', all }, { state: 's', redirectUri: 'http://localhost/cb' });
    expect(() => check({ code: 'c', app_id: '2019032617262200001' })).not.toThrow();
    expect(caught(() => check({ code: 'c', app_id: '2019032617262200002' })).code).toBe(ErrorCodes.CALLBACK_INVALID);
    expect(caught(() => check({ code: 'c' })).code).toBe(ErrorCodes.CALLBACK_INVALID);
  });

  describe('validateOptions', () => {
    const invalid = (extra: Record<string, unknown>) => caught(() => sopProvider.validateOptions({ ...options(), ...extra } as SopOptions));

    it('needs no client secret', () => {
      expect(() => sopProvider.validateOptions(options())).not.toThrow();
    });

    it.each([
      ['authURL', { authURL: undefined }],
      ['authURL', { authURL: 'openauth.example.com' }],
      ['gatewayURL', { gatewayURL: undefined }],
      ['gatewayURL', { gatewayURL: 'ftp://open.example.com' }],
      ['privateKey', { privateKey: undefined }],
      ['privateKey', { privateKey: 'not a key' }],
      ['platformPublicKey', { platformPublicKey: undefined }],
      ['platformPublicKey', { platformPublicKey: 'garbage' }],
      ['clientID', { clientID: '' }],
      ['signType', { signType: 'HMAC' }],
    ])('names %s when it is wrong', (option, extra) => {
      const error = invalid(extra);
      expect(error.code).toBe(ErrorCodes.CONFIGURATION_INVALID);
      expect(error.message).toContain(option);
    });

    it('refuses a private key given as the platform public key, without echoing it', () => {
      const error = invalid({ platformPublicKey: stranger.privatePem });
      expect(error.message).toMatch(/platformPublicKey is a private key/);
      expect(error.message).not.toContain('MII');
      expect(invalid({ platformPublicKey: stranger.privateKey }).message).toMatch(/platformPublicKey is a private key/);
    });

    it('refuses a non-RSA private key', () => {
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      expect(invalid({ privateKey: ec.privateKey }).message).toMatch(/RSA private key/);
    });
  });
});

describe('business calls', () => {
  const token: TokenSet = { accessToken: 'AT-business', tokenType: 'app_auth_token', expiresAt: null, extras: {}, obtainedAt: 0 };
  const api = sopProvider.api!;

  function apiRequest(path: string, body?: string): ApiRequest {
    return {
      method: 'POST',
      url: new URL(`https://open.example.com${path}`),
      headers: new Headers({ 'content-type': 'application/json', cookie: 'connect.sid=secret' }),
      ...(body === undefined ? {} : { body: Buffer.from(body) }),
    };
  }

  it('turns a request into a signed gateway form post', async () => {
    const attached = await api.attach(apiRequest('/goods.get?version=1.0', '{"goods_name":"iphone6"}'), token, options());
    expect(attached.method).toBe('POST');
    expect(attached.url.toString()).toBe('https://open.example.com/');
    expect(attached.headers.get('content-type')).toMatch(/^application\/x-www-form-urlencoded/);
    expect(attached.headers.get('cookie')).toBeNull();
    const form = Object.fromEntries(new URLSearchParams(attached.body!.toString('utf8')));
    expect(form).toMatchObject({
      method: 'goods.get',
      app_id: '2019032617262200001',
      app_auth_token: 'AT-business',
      biz_content: '{"goods_name":"iphone6"}',
      version: '1.0',
    });
    expect(specVerify(form, app.publicKey)).toBe(true);
  });

  it('sends {} for an empty body and refuses a non-JSON body or a missing method', async () => {
    const attached = await api.attach(apiRequest('/gateway/user.info.get'), token, options());
    expect(new URLSearchParams(attached.body!.toString()).get('biz_content')).toBe('{}');
    expect(new URLSearchParams(attached.body!.toString()).get('method')).toBe('user.info.get');
    await expect(Promise.resolve().then(() => api.attach(apiRequest('/goods.get', 'not json'), token, options()))).rejects.toMatchObject({
      code: ErrorCodes.API_REQUEST_INVALID,
    });
    await expect(Promise.resolve().then(() => api.attach(apiRequest('/'), token, options()))).rejects.toMatchObject({
      code: ErrorCodes.API_REQUEST_INVALID,
    });
  });

  it('verifies and unwraps the answer, keeping the status', async () => {
    const node = '{"request_id":"r","code":"10000","msg":"Success","name":"iphone6","note":"a,\\"sign\\":\\"x\\""}';
    const raw = { status: 200, headers: new Headers({ 'content-type': 'application/json', 'content-length': '999' }), body: Buffer.from(platformAnswer('goods_get_response', node, platform.privateKey)) };
    const attached = await api.attach(apiRequest('/goods.get', '{}'), token, options());
    for (const request of [attached, apiRequest('/goods.get', '{}')]) {
      const out = await api.readResponse!(raw, request, options());
      expect(out.status).toBe(200);
      expect(out.body.toString('utf8')).toBe(node);
      expect(out.headers.get('content-length')).toBeNull();
    }
    const tampered = { ...raw, body: Buffer.from(raw.body.toString().replace('iphone6', 'iphone7')) };
    await expect(Promise.resolve().then(() => api.readResponse!(tampered, attached, options()))).rejects.toMatchObject({
      code: ErrorCodes.RESPONSE_SIGNATURE_INVALID,
    });
    const bad = { status: 502, headers: new Headers(), body: Buffer.from('Bad Gateway') };
    await expect(Promise.resolve().then(() => api.readResponse!(bad, attached, options()))).rejects.toMatchObject({
      code: ErrorCodes.API_UPSTREAM_FAILED,
    });
  });

  it('recognizes 20001 token rejections only', () => {
    const head = (body: unknown) => ({ status: 200, headers: new Headers(), body });
    expect(api.isTokenRejected(head({ code: '20001', sub_code: 'aop.invalid-app-auth-token' }))).toBe(true);
    expect(api.isTokenRejected(head({ code: '20001', sub_code: 'aop.app-auth-token-time-out' }))).toBe(true);
    expect(api.isTokenRejected(head({ goods_get_response: { code: '20001', sub_code: 'aop.invalid-app-auth-token' }, sign: 'x' }))).toBe(true);
    expect(api.isTokenRejected(head({ code: '20001', sub_code: 'aop.something-else' }))).toBe(false);
    expect(api.isTokenRejected(head({ code: '40002', sub_code: 'isv.invalid-signature' }))).toBe(false);
    expect(api.isTokenRejected(head({ code: '10000' }))).toBe(false);
    expect(api.isTokenRejected({ status: 401, headers: new Headers() })).toBe(false);
  });
});

describe('SopStrategy', () => {
  it('binds the sop definition under the name sop, or another name', () => {
    const strategy = new SopStrategy(options());
    expect(strategy.name).toBe('sop');
    expect(strategy.provider).toBe(sopProvider);
    expect(new SopStrategy({ ...options(), name: 'sop-cn' }).name).toBe('sop-cn');
  });

  it('accepts a verify callback with or without the request', () => {
    const plain = new SopStrategy<{ id: string }>(options(), (_tokens, profile, done) => done(null, { id: profile.id }));
    const withReq = new SopStrategy<{ id: string }>({ ...options(), passReqToCallback: true }, (req, _tokens, profile, done) =>
      done(null, { id: `${req.method}:${profile.id}` }),
    );
    expect(plain.name).toBe('sop');
    expect(withReq.name).toBe('sop');
  });

  it('validates options at construction', () => {
    expect(() => new SopStrategy({ ...options(), gatewayURL: '' })).toThrow(/gatewayURL/);
  });
});
