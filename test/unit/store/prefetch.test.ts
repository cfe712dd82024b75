import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import type { TokenSet } from '../../../src/lib/token-set';
import { RedisBackend } from '../../../src/store/redis';
import { TokenStore } from '../../../src/store/token-store';
import { newRedis, uniquePrefix } from '../../helpers/app';

/**
 * What the session store hands the token store (token sets read in the session's own MGET):
 * taken once, by the owner it was read for, within a second of the read, and never after
 * a write or delete of that owner's sets in this process.
 */

let redis: Redis;
beforeAll(() => {
  redis = newRedis();
});
afterAll(async () => {
  await redis.quit();
});

const set = (accessToken: string): TokenSet => ({ accessToken, tokenType: 'Bearer', expiresAt: Date.now() + 3600_000, extras: {}, obtainedAt: Date.now() });

describe('TokenStore: token sets read with a session', () => {
  let store: TokenStore;

  beforeEach(() => {
    store = new TokenStore({ backend: new RedisBackend({ client: redis }), encryptionKeys: [randomBytes(32)], prefix: uniquePrefix('prefetch') });
  });

  /** What the session store does: read the owner's keys in one MGET, parse and offer them for `sid`. */
  async function offer(sid: string, owner: string, providers: string[], at = Date.now()): Promise<void> {
    const values = await redis.mget(...providers.map((p) => store.tokenKey(owner, p)));
    store.offerPrefetched(sid, { owner, at, providers, values: ['session', ...values], first: 1 });
  }

  it('is taken once per provider, decrypted as a read of the backend would be, then read again from the backend', async () => {
    await store.put('o1', 'di', set('di-token'));
    await offer('s1', 'o1', ['di', 'sop']);
    const taken = store.takePrefetched('s1', 'o1', 'di');
    expect(taken?.tokenSet.accessToken).toBe('di-token');
    expect(taken?.generation).toBe((await store.get('o1', 'di'))!.generation);
    expect(store.takePrefetched('s1', 'o1', 'di')).toBeUndefined();
    // Nothing stored for sop: the read said so (null), which is an answer, not "read again".
    expect(store.takePrefetched('s1', 'o1', 'sop')).toBeNull();
    expect(store.takePrefetched('s1', 'o1', 'sop')).toBeUndefined();
  });

  it('is never handed to another owner, another session, or a provider it did not read', async () => {
    await store.put('o1', 'di', set('di-token'));
    await offer('s1', 'o1', ['di']);
    expect(store.takePrefetched('s2', 'o1', 'di')).toBeUndefined();
    expect(store.takePrefetched('s1', 'o1', 'cnblogs')).toBeUndefined();
    expect(store.takePrefetched('s1', 'o2', 'di')).toBeUndefined();
  });

  it('is not used more than a second after its read', async () => {
    await store.put('o1', 'di', set('di-token'));
    await offer('s1', 'o1', ['di'], Date.now() - 1500);
    expect(store.takePrefetched('s1', 'o1', 'di')).toBeUndefined();
  });

  it('is dropped when this process writes or deletes that owner’s sets, and when the session store drops it', async () => {
    await store.put('o1', 'di', set('first'));
    await offer('s1', 'o1', ['di']);
    await offer('s2', 'o2', ['di']);
    await store.put('o1', 'di', set('second'));
    expect(store.takePrefetched('s1', 'o1', 'di')).toBeUndefined();
    expect(store.takePrefetched('s2', 'o2', 'di')).toBeNull();

    await offer('s1', 'o1', ['di']);
    await store.delete('o1', ['di']);
    expect(store.takePrefetched('s1', 'o1', 'di')).toBeUndefined();

    await store.put('o1', 'di', set('third'));
    await offer('s1', 'o1', ['di']);
    store.dropPrefetched('s1');
    expect(store.takePrefetched('s1', 'o1', 'di')).toBeUndefined();
  });

  it('what nobody takes (an unguarded route) is not kept once it is too old to use', async () => {
    await store.put('o1', 'di', set('di-token'));
    const old = Date.now() - 5000;
    for (let i = 0; i < 50; i += 1) await offer(`old-${i}`, 'o1', ['di'], old);
    expect(store.prefetchedCount).toBe(50);
    await offer('fresh', 'o1', ['di']);
    expect(store.prefetchedCount).toBe(1);
    expect(store.takePrefetched('fresh', 'o1', 'di')?.tokenSet.accessToken).toBe('di-token');
    expect(store.prefetchedCount).toBe(0);
  });

  it('a later read of the same session replaces an earlier one', async () => {
    await store.put('o1', 'di', set('first'));
    await offer('s1', 'o1', ['di']);
    // Another instance rotates the set; this session's next read sees it.
    const key = store.tokenKey('o1', 'di');
    await new RedisBackend({ client: redis }).write(key, (await redis.get(key))!.split('|')[1]!, 60);
    await offer('s1', 'o1', ['di']);
    expect(store.takePrefetched('s1', 'o1', 'di')?.generation).toBe(2);
  });
});
