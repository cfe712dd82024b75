import { inspect } from 'node:util';
import { isExpired, mergeRefreshed, normalizeTokenResponse, readLifetime, toOAuthToken, type TokenSet } from '../../../src/lib/token-set';

describe('token sets', () => {
  const now = 1_700_000_000_000;

  it('normalizes a standard answer and keeps the extras', () => {
    const set = normalizeTokenResponse(
      { access_token: 'a', token_type: 'bearer', expires_in: 60, refresh_token: 'r', scope: 'read', user_id: '7' },
      { now },
    ) as TokenSet;
    expect(set).toEqual({ accessToken: 'a', tokenType: 'bearer', expiresAt: now + 60_000, refreshToken: 'r', scope: 'read', extras: { user_id: '7' }, obtainedAt: now });
  });

  it('reads lifetimes given as numbers or numeric strings', () => {
    expect(readLifetime(60)).toBe(60);
    expect(readLifetime('101837')).toBe(101837);
    expect(readLifetime(undefined)).toBeUndefined();
    expect(readLifetime('soon')).toBeNaN();
  });

  it('treats a missing expires_in as never expiring, and negative lifetimes per provider', () => {
    expect((normalizeTokenResponse({ access_token: 'a' }, { now }) as TokenSet).expiresAt).toBeNull();
    expect((normalizeTokenResponse({ access_token: 'a', expires_in: -1 }, { now, nonPositiveLifetimeMeansNever: true }) as TokenSet).expiresAt).toBeNull();
    expect((normalizeTokenResponse({ access_token: 'a', expires_in: -1 }, { now }) as TokenSet).expiresAt).toBe(now - 1000);
  });

  it.each([
    [{}, 'it has no access_token'],
    [{ access_token: '' }, 'it has no access_token'],
    [{ access_token: 'a', expires_in: 'later' }, 'its expires_in is not a number of seconds (up to a century)'],
    [{ access_token: 'a', expires_in: -1e400 }, 'its expires_in is not a number of seconds (up to a century)'],
    [{ access_token: 'a', expires_in: 1e20 }, 'its expires_in is not a number of seconds (up to a century)'],
    [{ access_token: 'a', expires_in: '-' + '9'.repeat(400) }, 'its expires_in is not a number of seconds (up to a century)'],
    [{ access_token: 'a', refresh_token_expires_in: Number.NaN }, 'its refresh_token_expires_in is not a number of seconds (up to a century)'],
    [{ access_token: 'a', scope: [1, {}] }, 'its scope is neither a string nor a list of strings'],
    [{ access_token: 'a\r\nb' }, 'its access_token holds characters a token cannot have (RFC 6749 allows printable ASCII only)'],
    [{ access_token: 'a', refresh_token: ' r' }, 'its refresh_token holds characters a token cannot have (RFC 6749 allows printable ASCII only)'],
    [{ access_token: 'a', refresh_token: 5 }, 'its refresh_token is not a string'],
    [{ access_token: 'a', token_type: 1 }, 'its token_type is not a string'],
  ])('describes what is wrong with %j', (body, why) => {
    expect(normalizeTokenResponse(body as Record<string, unknown>)).toBe(why);
  });

  it('keeps the old refresh token when a refresh answer has none', () => {
    const previous: TokenSet = { accessToken: 'a1', tokenType: 'Bearer', expiresAt: 1, refreshToken: 'r1', scope: 's', extras: { x: 1 }, obtainedAt: 0 };
    const next: TokenSet = { accessToken: 'a2', tokenType: 'Bearer', expiresAt: 2, extras: {}, obtainedAt: 1 };
    expect(mergeRefreshed(previous, next)).toMatchObject({ accessToken: 'a2', refreshToken: 'r1', scope: 's', extras: { x: 1 } });
    expect(mergeRefreshed(previous, { ...next, refreshToken: 'r2' }).refreshToken).toBe('r2');
  });

  it('knows expiry with a skew, and never for null', () => {
    const set: TokenSet = { accessToken: 'a', tokenType: 'Bearer', expiresAt: now + 30_000, extras: {}, obtainedAt: now };
    expect(isExpired(set, now)).toBe(false);
    expect(isExpired(set, now, 60_000)).toBe(true);
    expect(isExpired({ ...set, expiresAt: null }, now + 1e12, 60_000)).toBe(false);
  });

  it('req.oauthToken hides the access token from logs and JSON but exposes it to code', () => {
    const token = toOAuthToken('example', { accessToken: 'SECRET-ACCESS', tokenType: 'Bearer', expiresAt: now, refreshToken: 'SECRET-REFRESH', scope: 'read', extras: { a: 1 }, obtainedAt: now });
    expect(token.accessToken).toBe('SECRET-ACCESS');
    expect(JSON.stringify(token)).not.toContain('SECRET');
    expect(inspect(token)).not.toContain('SECRET');
    expect(inspect(token)).toContain('[redacted]');
    expect('refreshToken' in token).toBe(false);
    expect(token.expiresAt).toEqual(new Date(now));
    expect(Object.isFrozen(token)).toBe(true);
  });
});
