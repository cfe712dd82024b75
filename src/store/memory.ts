import type { StoredEntry, TokenStoreBackend } from './backend.js';

interface Slot {
  generation: number;
  value: string;
  expiresAt: number | null;
}

/**
 * A process-local backend for the embedded default and for tests. Tokens are still
 * encrypted. Not shared between processes: use {@link RedisBackend} for more than one.
 */
export class MemoryBackend implements TokenStoreBackend {
  readonly #values = new Map<string, Slot>();
  readonly #locks = new Map<string, { owner: string; expiresAt: number }>();

  #live(key: string): Slot | undefined {
    const slot = this.#values.get(key);
    if (slot && slot.expiresAt !== null && slot.expiresAt <= Date.now()) {
      this.#values.delete(key);
      return undefined;
    }
    return slot;
  }

  async read(key: string): Promise<StoredEntry | null> {
    const slot = this.#live(key);
    return slot ? { generation: slot.generation, value: slot.value } : null;
  }

  async write(key: string, value: string, ttlSeconds: number, expectedGeneration?: number): Promise<number | null> {
    const current = this.#live(key)?.generation ?? 0;
    if (expectedGeneration !== undefined && expectedGeneration !== current) return null;
    const generation = current + 1;
    this.#values.set(key, { generation, value, expiresAt: ttlSeconds > 0 ? Date.now() + ttlSeconds * 1000 : null });
    return generation;
  }

  async remove(keys: readonly string[]): Promise<void> {
    for (const key of keys) this.#values.delete(key);
  }

  async touch(key: string, ttlSeconds: number): Promise<void> {
    const slot = this.#live(key);
    if (slot) slot.expiresAt = Date.now() + Math.max(1, ttlSeconds) * 1000;
  }

  async acquireLock(key: string, owner: string, leaseMs: number): Promise<boolean> {
    const held = this.#locks.get(key);
    if (held && held.expiresAt > Date.now()) return false;
    this.#locks.set(key, { owner, expiresAt: Date.now() + leaseMs });
    return true;
  }

  async renewLock(key: string, owner: string, leaseMs: number): Promise<boolean> {
    const held = this.#locks.get(key);
    if (!held || held.owner !== owner || held.expiresAt <= Date.now()) return false;
    held.expiresAt = Date.now() + leaseMs;
    return true;
  }

  async releaseLock(key: string, owner: string): Promise<boolean> {
    const held = this.#locks.get(key);
    if (!held || held.owner !== owner) return false;
    this.#locks.delete(key);
    return true;
  }

  /** Every stored key and value, as a test would scan Redis. */
  dump(): Array<[string, string]> {
    return [...this.#values.entries()].map(([k, v]) => [k, v.value]);
  }
}
