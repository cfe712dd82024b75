import { ErrorCodes, OAuthKeeperError } from '../../../src/errors';
import { readRetryAfter, readTokenResponse } from '../../../src/provider/standard';

const config = { provider: 'acme' };

function refusal(status: number, text: string, headers?: Headers): OAuthKeeperError {
  try {
    readTokenResponse(config, status, text, headers);
  } catch (error) {
    return error as OAuthKeeperError;
  }
  throw new Error('readTokenResponse accepted the answer');
}

describe('readTokenResponse', () => {
  it('a valid token beside a member nested 100,000 levels deep (about 600 KB) is a typed 502, not a crash', () => {
    const depth = 100_000;
    const text = `{"access_token":"abcdefghijkl","token_type":"Bearer","x":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
    expect(text.length).toBeGreaterThan(600_000);
    const error = refusal(200, text);
    expect(error).toBeInstanceOf(OAuthKeeperError);
    expect([error.code, error.status]).toEqual([ErrorCodes.TOKEN_RESPONSE_MALFORMED, 502]);
    expect(error.grantInvalid).toBe(false);
  });

  it('only invalid_grant (or the configured codes) marks the grant invalid; our own credentials refused do not', () => {
    expect(refusal(400, '{"error":"invalid_grant"}').grantInvalid).toBe(true);
    expect(refusal(400, '{"error":"invalid_client"}').grantInvalid).toBe(false);
    expect(refusal(401, '{"error":"unauthorized_client"}').grantInvalid).toBe(false);
    expect(refusal(500, '{"error":"invalid_grant"}').grantInvalid).toBe(false);
    expect(refusal(200, '{"error":"invalid_grant"}').grantInvalid).toBe(true);
    let custom: OAuthKeeperError | undefined;
    try {
      readTokenResponse({ provider: 'di', grantInvalidErrors: ['invalid_grant', 'invalid_token'] }, 401, '{"error":"invalid_token"}');
    } catch (error) {
      custom = error as OAuthKeeperError;
    }
    expect(custom?.grantInvalid).toBe(true);
  });

  it('reads Retry-After of a 429 or 503, in seconds or as a date', () => {
    expect(refusal(429, '', new Headers({ 'retry-after': '7' })).retryAfter).toBe(7);
    expect(refusal(503, '', new Headers({ 'retry-after': new Date(Date.now() + 30_000).toUTCString() })).retryAfter).toBeGreaterThanOrEqual(28);
    expect(refusal(400, '{"error":"invalid_request"}', new Headers({ 'retry-after': '7' })).retryAfter).toBeUndefined();
    expect(readRetryAfter(new Headers({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(readRetryAfter(undefined)).toBeUndefined();
  });
});
