import type { StoredEntry, TokenStoreBackend } from './backend.js';

// Values are stored as "<generation>|<ciphertext>" so that one Lua call can compare and set.
const WRITE = `
local cur = redis.call('GET', KEYS[1])
local gen = 0
if cur then gen = tonumber(string.match(cur, '^(%d+)|')) or 0 end
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= gen then return -1 end
local nextgen = gen + 1
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], nextgen .. '|' .. ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], nextgen .. '|' .. ARGV[1])
end
return nextgen`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** A value as the backend stores it, `<generation>|<ciphertext>`, read back; `null` when absent or not one. */
export function parseStoredValue(raw: string | null): StoredEntry | null {
  if (raw === null) return null;
  const bar = raw.indexOf('|');
  if (bar < 1) return null;
  return { generation: Number(raw.slice(0, bar)), value: raw.slice(bar + 1) };
}

/**
 * The five Redis commands the backend sends, as an ioredis `Redis` or `Cluster` offers them.
 * Declared here so that these types need nothing from ioredis (an optional peer): an app on
 * `MemoryBackend` compiles without it installed.
 */
export interface RedisClientLike {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, millisecondsToken: 'PX', milliseconds: number, nx: 'NX'): Promise<unknown>;
  del(...keys: string[]): Promise<number>;
  expire(key: string, seconds: number): Promise<number>;
  eval(script: string, numberOfKeys: number, ...args: Array<string | number>): Promise<unknown>;
}

export interface RedisBackendOptions {
  /** An ioredis client or Cluster (any client with these commands). The backend never closes it. */
  client: RedisClientLike;
}

/**
 * Token sets and refresh locks in Redis or Redis Cluster. Keys are built by the token
 * store with a `{owner}` hash tag, so every key of one session lands in one slot.
 */
export class RedisBackend implements TokenStoreBackend {
  readonly #client: RedisClientLike;

  constructor(options: RedisBackendOptions) {
    this.#client = options.client;
  }

  async read(key: string): Promise<StoredEntry | null> {
    return parseStoredValue(await this.#client.get(key));
  }

  /** Whether this backend sends its commands through `client` (the session store reads its keys along). */
  usesClient(client: unknown): boolean {
    return client === this.#client;
  }

  async write(key: string, value: string, ttlSeconds: number, expectedGeneration?: number): Promise<number | null> {
    const result = (await this.#client.eval(
      WRITE,
      1,
      key,
      value,
      String(Math.max(0, Math.ceil(ttlSeconds))),
      expectedGeneration === undefined ? '' : String(expectedGeneration),
    )) as number;
    return result < 0 ? null : result;
  }

  async remove(keys: readonly string[]): Promise<void> {
    // One DEL per key: keys of different owners may live in different cluster slots.
    await Promise.all(keys.map((key) => this.#client.del(key)));
  }

  async touch(key: string, ttlSeconds: number): Promise<void> {
    await this.#client.expire(key, Math.max(1, Math.ceil(ttlSeconds)));
  }

  async acquireLock(key: string, owner: string, leaseMs: number): Promise<boolean> {
    return (await this.#client.set(key, owner, 'PX', leaseMs, 'NX')) === 'OK';
  }

  async renewLock(key: string, owner: string, leaseMs: number): Promise<boolean> {
    return ((await this.#client.eval(RENEW, 1, key, owner, String(leaseMs))) as number) === 1;
  }

  async releaseLock(key: string, owner: string): Promise<boolean> {
    return ((await this.#client.eval(RELEASE, 1, key, owner)) as number) === 1;
  }
}
