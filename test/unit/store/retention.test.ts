import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import { ErrorCodes } from '../../../src/errors';
import { TokenCipher } from '../../../src/lib/cipher';
import type { TokenSet } from '../../../src/lib/token-set';
import { MemoryBackend } from '../../../src/store/memory';
import { appOwner, isAppOwner, ownerKeyOf } from '../../../src/store/owner';
import { RedisBackend } from '../../../src/store/redis';
import { TokenStore } from '../../../src/store/token-store';
import { newRedis, uniquePrefix } from '../../helpers/app';
import { until } from '../../helpers/until';

const permanent: TokenSet = { accessToken: 'APP-AUTH-TOKEN-1', tokenType: 'app_auth_token', expiresAt: null, refreshToken: 'APP-REFRESH-1', refreshTokenExpiresAt: null, extras: {}, obtainedAt: 1_700_000_000_000 };

describe('token store retention and records', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = newRedis();
  });
  afterAll(async () => {
    await redis.quit();
  });

  const store = (options: { retention?: 'sliding' | 'fixed'; key?: Buffer; prefix?: string } = {}) =>
    new TokenStore({
      backend: new RedisBackend({ client: redis }),
      encryptionKeys: [options.key ?? randomBytes(32)],
      prefix: options.prefix ?? uniquePrefix('retention'),
      ...(options.retention ? { retention: options.retention } : {}),
    });

  it('sliding: a use gives a permanent set maxAgeSeconds again, without changing its value or generation', async () => {
    const s = store();
    const generation = await s.put('u:job', 'sop', permanent);
    const key = s.tokenKey('u:job', 'sop');
    await redis.expire(key, 5);
    s.touch('u:job', 'sop', permanent);
    await until(async () => (await redis.ttl(key)) > 5, 'the touch');
    expect(await redis.ttl(key)).toBeGreaterThan(29 * 24 * 3600);
    expect(await s.get('u:job', 'sop')).toMatchObject({ tokenSet: permanent, generation });
  });

  it('fixed: retention counts from the last write only', async () => {
    const s = store({ retention: 'fixed' });
    await s.put('u:job', 'sop', permanent);
    const key = s.tokenKey('u:job', 'sop');
    await redis.expire(key, 50);
    s.touch('u:job', 'sop', permanent);
    await s.get('u:job', 'sop'); // a round trip after the (absent) touch
    expect(await redis.ttl(key)).toBeLessThanOrEqual(50);
  });

  it('refuses an unknown retention with the fix', () => {
    expect(() => new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [randomBytes(32)], retention: 'forever' as never })).toThrow(
      expect.objectContaining({ code: ErrorCodes.CONFIGURATION_INVALID, message: expect.stringMatching(/'sliding'.*'fixed'/) }),
    );
  });

  it('keeps connectedAt with the set, and reads sets written before it was kept', async () => {
    const key = randomBytes(32);
    const prefix = uniquePrefix('legacy');
    const s = store({ key, prefix });
    await s.put('owner', 'di', permanent, undefined, 1234);
    expect((await s.get('owner', 'di'))!.connectedAt).toBe(1234);
    // A bare token set, as earlier versions stored it: connectedAt is when it was obtained.
    const storageKey = s.tokenKey('old', 'di');
    await new RedisBackend({ client: redis }).write(storageKey, new TokenCipher([key]).encrypt(JSON.stringify(permanent), storageKey), 60);
    expect(await s.get('old', 'di')).toMatchObject({ tokenSet: permanent, connectedAt: permanent.obtainedAt });
  });

  it('owner keys: the app\'s kind never meets a session\'s random one', () => {
    expect(appOwner('user-42')).toBe('u:user-42');
    expect(isAppOwner('u:user-42')).toBe(true);
    expect(ownerKeyOf('u:user-42')).toBe('user-42');
    expect(ownerKeyOf('Zx0_random-session-owner')).toBeNull();
    expect(() => appOwner('u}{x')).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIGURATION_INVALID }));
  });
});
