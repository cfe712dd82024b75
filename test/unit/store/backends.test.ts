import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import { MemoryBackend } from '../../../src/store/memory';
import { RedisBackend } from '../../../src/store/redis';
import { TokenStore } from '../../../src/store/token-store';
import type { TokenStoreBackend } from '../../../src/store/backend';
import { ErrorCodes, OAuthKeeperError } from '../../../src/errors';
import type { TokenSet } from '../../../src/lib/token-set';
import { newRedis, uniquePrefix } from '../../helpers/app';

let redis: Redis;
beforeAll(() => {
  redis = newRedis();
});
afterAll(async () => {
  await redis.quit();
});

const backends: Array<[string, () => TokenStoreBackend]> = [
  ['MemoryBackend', () => new MemoryBackend()],
  ['RedisBackend', () => new RedisBackend({ client: redis })],
];

describe.each(backends)('%s', (_name, make) => {
  let backend: TokenStoreBackend;
  let key: string;
  beforeEach(() => {
    backend = make();
    key = uniquePrefix('b') + 'tok';
  });

  it('writes generations and compare-and-sets', async () => {
    expect(await backend.read(key)).toBeNull();
    expect(await backend.write(key, 'one', 60)).toBe(1);
    expect(await backend.write(key, 'two', 60, 1)).toBe(2);
    // A writer that read generation 1 lost: its older copy is not written.
    expect(await backend.write(key, 'stale', 60, 1)).toBeNull();
    expect(await backend.read(key)).toEqual({ generation: 2, value: 'two' });
    // Expecting absence (0) fails while a value exists.
    expect(await backend.write(key, 'x', 60, 0)).toBeNull();
    await backend.remove([key]);
    expect(await backend.read(key)).toBeNull();
    expect(await backend.write(key, 'fresh', 60, 0)).toBe(1);
  });

  it('keeps values containing the separator intact', async () => {
    await backend.write(key, 'a|b|c', 60);
    expect((await backend.read(key))?.value).toBe('a|b|c');
  });

  it('locks: one holder, renew only by the holder, compare-and-delete release', async () => {
    const lock = key + ':lock';
    expect(await backend.acquireLock(lock, 'A', 5_000)).toBe(true);
    expect(await backend.acquireLock(lock, 'B', 5_000)).toBe(false);
    expect(await backend.renewLock(lock, 'B', 5_000)).toBe(false);
    expect(await backend.renewLock(lock, 'A', 5_000)).toBe(true);
    expect(await backend.releaseLock(lock, 'B')).toBe(false);
    expect(await backend.acquireLock(lock, 'B', 5_000)).toBe(false);
    expect(await backend.releaseLock(lock, 'A')).toBe(true);
    expect(await backend.acquireLock(lock, 'B', 5_000)).toBe(true);
  });

  it('lets a lease lapse so a dead holder does not block others', async () => {
    const lock = key + ':lease';
    expect(await backend.acquireLock(lock, 'dead', 30)).toBe(true);
    const deadline = Date.now() + 5_000;
    let taken = false;
    while (!taken && Date.now() < deadline) {
      taken = await backend.acquireLock(lock, 'alive', 5_000);
      if (!taken) await new Promise((r) => setImmediate(r));
    }
    expect(taken).toBe(true);
    expect(await backend.releaseLock(lock, 'dead')).toBe(false);
  });
});

describe('TokenStore', () => {
  const set: TokenSet = { accessToken: 'ACCESS-123', tokenType: 'Bearer', expiresAt: Date.now() + 3600_000, refreshToken: 'REFRESH-456', scope: 'read', extras: {}, obtainedAt: Date.now() };

  it('keys every value of one owner into one cluster slot and encrypts them', async () => {
    const prefix = uniquePrefix('ts');
    const store = new TokenStore({ backend: new RedisBackend({ client: redis }), encryptionKeys: [randomBytes(32)], prefix });
    expect(store.tokenKey('own', 'di')).toBe(`${prefix}tok:{own}:di`);
    expect(store.lockKey('own', 'di')).toBe(`${prefix}lock:{own}:di`);
    expect(await store.put('own', 'di', set)).toBe(1);
    const raw = await redis.get(store.tokenKey('own', 'di'));
    expect(raw).not.toContain('ACCESS-123');
    expect(raw).not.toContain('REFRESH-456');
    expect((await store.get('own', 'di'))?.tokenSet).toEqual(set);
    const ttl = await redis.ttl(store.tokenKey('own', 'di'));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(30 * 24 * 3600);
  });

  it('bounds the TTL by what is still usable', async () => {
    const prefix = uniquePrefix('ttl');
    const store = new TokenStore({ backend: new RedisBackend({ client: redis }), encryptionKeys: [randomBytes(32)], prefix, maxAgeSeconds: 1000 });
    await store.put('o', 'a', { ...set, refreshToken: undefined as never, expiresAt: Date.now() + 100_000 } as TokenSet);
    const noRefresh: TokenSet = { accessToken: 'x', tokenType: 'Bearer', expiresAt: Date.now() + 100_000, extras: {}, obtainedAt: Date.now() };
    await store.put('o', 'b', noRefresh);
    expect(await redis.ttl(store.tokenKey('o', 'b'))).toBeLessThanOrEqual(100);
    await store.put('o', 'c', { ...noRefresh, expiresAt: null });
    expect(await redis.ttl(store.tokenKey('o', 'c'))).toBeGreaterThan(900);
  });

  it('reports an unreachable Redis as STORE_UNAVAILABLE without crashing', async () => {
    const { default: IORedis } = await import('ioredis');
    const dead = new IORedis({ port: 1, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    dead.on('error', () => undefined);
    const store = new TokenStore({ backend: new RedisBackend({ client: dead }), encryptionKeys: [randomBytes(32)] });
    await expect(store.get('o', 'p')).rejects.toMatchObject({ code: ErrorCodes.STORE_UNAVAILABLE, status: 503 });
    dead.disconnect();
  });

  it('validates its options', () => {
    expect(() => new TokenStore({} as never)).toThrow(OAuthKeeperError);
    expect(() => new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [randomBytes(32)], maxAgeSeconds: 0 })).toThrow(/maxAgeSeconds/);
  });
});
