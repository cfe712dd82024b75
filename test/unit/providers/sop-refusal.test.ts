import { createSign, type KeyObject } from 'node:crypto';
import { ErrorCodes, OAuthKeeperError } from '../../../src/errors';
import { readGatewayAnswer } from '../../../src/providers/sop/gateway';
import type { SopOptions } from '../../../src/providers/sop/index';
import { gatewayRefusalOf, refusalHint, scrubGatewayText } from '../../../src/providers/sop/refusal';
import { rsaKeyPair, type RsaKeyPair } from '../../helpers/keys';
import { sopOfflineOptions } from '../../helpers/providers';

/**
 * Reading gateway refusals: an unsigned one is reported as what it says — its code,
 * sub_code and scrubbed words only — while an unsigned or badly signed success, and
 * anything about the grant, stays a signature error that decides nothing.
 */

const METHOD = 'open.auth.token.app';
const NODE = 'open_auth_token_app_response';

// At load time: the table of answers below is built from them.
const app: RsaKeyPair = rsaKeyPair();
const platform: RsaKeyPair = rsaKeyPair();

function options(): SopOptions {
  return sopOfflineOptions(app.privatePem, platform.publicPem);
}

function signed(node: Record<string, unknown>, key: KeyObject = platform.privateKey): string {
  const text = JSON.stringify(node);
  return `{"${NODE}":${text},"sign":"${createSign('RSA-SHA256').update(text, 'utf8').sign(key, 'base64')}"}`;
}

function unsigned(node: Record<string, unknown>): string {
  return `{"${NODE}":${JSON.stringify(node)}}`;
}

function read(text: string, purpose: 'token' | 'api' = 'token', secrets: string[] = []): OAuthKeeperError {
  try {
    readGatewayAnswer('sop', purpose, options(), METHOD, { status: 200, text }, secrets);
  } catch (error) {
    expect(error).toBeInstanceOf(OAuthKeeperError);
    return error as OAuthKeeperError;
  }
  throw new Error('expected a throw');
}

const refusal = (code: string, subCode: string, subMsg = 'x') => ({ request_id: 'r', code, msg: 'Invalid Arguments', sub_code: subCode, sub_msg: subMsg });

describe('an unsigned gateway refusal', () => {
  it('40002 isv.invalid-signature names privateKey, not platformPublicKey', () => {
    const error = read(unsigned(refusal('40002', 'isv.invalid-signature', 'Invalid signature')));
    expect(error).toMatchObject({ code: ErrorCodes.TOKEN_ENDPOINT_FAILED, oauthError: 'isv.invalid-signature', transient: false, grantInvalid: false });
    expect(error.message).toMatch(/privateKey/);
    expect(error.message).toMatch(/unsigned/);
    expect(error.message).not.toMatch(/platformPublicKey/);
    expect(error.details).toMatchObject({ code: '40002', subCode: 'isv.invalid-signature', signed: false });
    expect(error.details).not.toHaveProperty('requestId');
  });

  it.each<[string, string, RegExp]>([
    ['40002', 'isv.invalid-timestamp', /clock/],
    ['40001', 'isv.missing-timestamp', /clock/],
    ['40002', 'isv.invalid-app-id', /clientID/],
    ['40001', 'isv.missing-app-id', /clientID/],
    ['40001', 'isv.missing-signature', /privateKey/],
    ['40002', 'isv.invalid-signature-type', /signType/],
    ['40001', 'isv.missing-version', /parameter version missing/],
    ['40001', 'isv.missing-charset', /parameter charset missing/],
    ['40006', 'isv.ip-forbidden', /IP/],
    ['20000', 'isp.unknown-error', /later try/],
  ])('%s %s names its fix', (code, subCode, fix) => {
    const error = read(unsigned(refusal(code, subCode)));
    expect(error.oauthError).toBe(subCode);
    expect(error.message).toMatch(fix);
    expect(error.transient).toBe(code === '20000');
  });

  it('is an upstream failure for a business call, never a node handed to the caller', () => {
    const error = read(unsigned(refusal('40002', 'isv.invalid-signature')), 'api');
    expect(error).toMatchObject({ code: ErrorCodes.API_UPSTREAM_FAILED, oauthError: 'isv.invalid-signature' });
    expect(error.message).toMatch(/privateKey/);
  });

  it('reads nothing but code, sub_code and the scrubbed words', () => {
    const node = { ...refusal('40002', 'isv.invalid-signature', 'Invalid signature for RT-secret-value-1 "<b>'), app_auth_token: 'AT-in-refusal-0123456789' };
    const error = read(unsigned(node), 'token', ['RT-secret-value-1']);
    const everything = JSON.stringify({ message: error.message, details: error.details });
    expect(everything).not.toContain('AT-in-refusal');
    expect(everything).not.toContain('RT-secret-value-1');
    expect(everything).not.toContain('<b>');
    expect(error.message).toContain('Invalid signature for ***');
  });

  it('drops a code or sub_code that is not one (the message never carries attacker text as a code)', () => {
    const error = read(unsigned({ code: '4000 2; check https://evil.example', sub_code: 'isv.x <script>' }));
    expect(error.code).toBe(ErrorCodes.TOKEN_ENDPOINT_FAILED);
    expect(error.oauthError).toBeUndefined();
    expect(error.message).not.toMatch(/evil|script/);
  });
});

describe('what stays a signature error', () => {
  it.each<[string, string]>([
    ['an unsigned success', unsigned({ code: '10000', msg: 'Success', app_auth_token: 'AT-forged', app_refresh_token: 'RT-forged' })],
    ['an unsigned invalid_grant inside 10000', unsigned({ code: '10000', msg: 'Success', error: 'invalid_grant' })],
    ['a success with an empty sign', unsigned({ code: '10000', app_auth_token: 'AT-forged' }).replace(/}$/, ',"sign":""}')],
    ['a badly signed refusal', signed(refusal('40002', 'isv.invalid-signature'), app.privateKey)],
    ['a badly signed success', signed({ code: '10000', app_auth_token: 'AT-forged' }, app.privateKey)],
  ])('%s', (_name, text) => {
    const error = read(text);
    expect(error).toMatchObject({ code: ErrorCodes.RESPONSE_SIGNATURE_INVALID, grantInvalid: false });
    expect(error.message).toMatch(/platformPublicKey/);
    expect(error.message).not.toContain('forged');
  });

  it('a signed refusal is verified and comes back as the node, for the token grant to map', () => {
    const verified = readGatewayAnswer('sop', 'token', options(), METHOD, { status: 200, text: signed(refusal('40002', 'isv.invalid-timestamp')) });
    expect(verified.node).toMatchObject({ code: '40002', sub_code: 'isv.invalid-timestamp' });
  });
});

describe('scrubGatewayText and gatewayRefusalOf', () => {
  it('keeps ordinary words, masks secrets and token-like runs, flattens and bounds the text', () => {
    expect(scrubGatewayText('Invalid app_id')).toBe('Invalid app_id');
    expect(scrubGatewayText('isv.invalid-signature and Missing Required Arguments')).toBe('isv.invalid-signature and Missing Required Arguments');
    expect(scrubGatewayText('token 856faf8d77d3b985c1073557ce6ea724 bad')).toBe('token *** bad');
    expect(scrubGatewayText('given secret-sent-here', ['secret-sent-here'])).toBe('given ***');
    expect(scrubGatewayText('line\r\nSet-Cookie: x\u0000')).toBe('line Set-Cookie: x');
    expect(scrubGatewayText('é'.repeat(500))!.length).toBeLessThanOrEqual(121);
    expect(scrubGatewayText(40002)).toBe('40002');
    expect(scrubGatewayText({})).toBeUndefined();
    expect(scrubGatewayText('   ')).toBeUndefined();
  });

  it('finds a refusal by a sub_code or a code other than 10000, and nothing else', () => {
    expect(gatewayRefusalOf({ code: '10000', msg: 'Success', app_auth_token: 'AT' })).toBeUndefined();
    expect(gatewayRefusalOf({ app_auth_token: 'AT' })).toBeUndefined();
    expect(gatewayRefusalOf({ code: 40004, msg: 'Business Failed' })).toEqual({ code: '40004', msg: 'Business Failed' });
    expect(gatewayRefusalOf({ code: '10000', sub_code: 'isv.invalid-parameter' })).toEqual({ code: '10000', subCode: 'isv.invalid-parameter' });
  });

  it('has no hint for a sub-code it does not know', () => {
    expect(refusalHint({ code: '40004', subCode: 'biz.goods-not-found' })).toBe('');
  });
});
