import { randomBytes } from 'node:crypto';
import type Redis from 'ioredis';
import { TokenCipher } from '../../../src/lib/cipher';
import type { TokenSet } from '../../../src/lib/token-set';
import { MemoryBackend } from '../../../src/store/memory';
import { RedisBackend } from '../../../src/store/redis';
import { TokenStore } from '../../../src/store/token-store';
import type { TokenStoreBackend } from '../../../src/store/backend';
import { newRedis, uniquePrefix } from '../../helpers/app';

/** The token store's memo of decrypted values: fewer decrypts, never a read fewer. */

let redis: Redis;
beforeAll(() => {
  redis = newRedis();
});
afterAll(async () => {
  await redis.quit();
});

const set = (accessToken: string): TokenSet => ({ accessToken, tokenType: 'Bearer', expiresAt: Date.now() + 3600_000, extras: { user_id: 'u1' }, obtainedAt: Date.now() });

describe.each([
  ['MemoryBackend', () => new MemoryBackend()],
  ['RedisBackend', () => new RedisBackend({ client: redis })],
] as Array<[string, () => TokenStoreBackend]>)('%s', (_name, make) => {
  const keys = [randomBytes(32)];
  let backend: TokenStoreBackend;
  let prefix: string;
  /** Two instances of the app: a store each, one backend (one Redis). */
  let here: TokenStore;
  let elsewhere: TokenStore;
  let decrypts: jest.SpyInstance;
  let reads: jest.SpyInstance;

  beforeEach(() => {
    backend = make();
    prefix = uniquePrefix('memo');
    here = new TokenStore({ backend, encryptionKeys: keys, prefix });
    elsewhere = new TokenStore({ backend, encryptionKeys: keys, prefix });
    decrypts = jest.spyOn(TokenCipher.prototype, 'decrypt');
    reads = jest.spyOn(backend, 'read');
  });

  afterEach(() => {
    decrypts.mockRestore();
    reads.mockRestore();
  });

  it('reads the backend every time; decrypts a value only when it differs from the last one read', async () => {
    const generation = await elsewhere.put('o1', 'example', set('first'));
    const one = await here.get('o1', 'example');
    const two = await here.get('o1', 'example');
    expect(reads).toHaveBeenCalledTimes(2);
    expect(decrypts).toHaveBeenCalledTimes(1);
    expect(two).toEqual(one);
    expect(two!.generation).toBe(generation);
    expect(Object.isFrozen(two!.tokenSet) && Object.isFrozen(two!.tokenSet.extras)).toBe(true);
  });

  it('a rotation written by another instance is what the next read answers', async () => {
    const g1 = (await elsewhere.put('o1', 'example', set('first')))!;
    expect((await here.get('o1', 'example'))!.tokenSet.accessToken).toBe('first');
    const g2 = await elsewhere.put('o1', 'example', set('second'), g1);
    const after = await here.get('o1', 'example');
    expect(after!.tokenSet.accessToken).toBe('second');
    expect(after!.generation).toBe(g2);
    // The same token set written again is a new value (a new IV): read and decrypted as such.
    await elsewhere.put('o1', 'example', set('second'), g2!);
    expect((await here.get('o1', 'example'))!.generation).toBe(g2! + 1);
    expect(decrypts).toHaveBeenCalledTimes(3);
  });

  it('a set deleted by another instance (logout) reads as none at once', async () => {
    await elsewhere.put('o1', 'example', set('first'));
    expect(await here.get('o1', 'example')).not.toBeNull();
    await elsewhere.delete('o1', ['example']);
    expect(await here.get('o1', 'example')).toBeNull();
    // Written again (a new login): the new value, not the one this instance saw before.
    await elsewhere.put('o1', 'example', set('again'));
    expect((await here.get('o1', 'example'))!.tokenSet.accessToken).toBe('again');
  });

  it('a value moved under another key does not decrypt there, memo or not', async () => {
    await elsewhere.put('o1', 'example', set('first'));
    expect(await here.get('o1', 'example')).not.toBeNull();
    const entry = (await backend.read(here.tokenKey('o1', 'example')))!;
    await backend.write(here.tokenKey('o2', 'example'), entry.value, 60);
    await expect(here.get('o2', 'example')).rejects.toMatchObject({ code: 'OAUTH_KEEPER_TOKEN_DECRYPTION_FAILED' });
  });
});
