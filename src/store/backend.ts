/** A stored, already encrypted value and the generation it was written as. */
export interface StoredEntry {
  generation: number;
  value: string;
}

/**
 * Where encrypted token sets and refresh locks live. Generations make every write a
 * compare-and-set, so a token set refreshed by one request or instance can never be
 * overwritten by an older copy.
 */
export interface TokenStoreBackend {
  read(key: string): Promise<StoredEntry | null>;
  /**
   * Writes `value` as generation (current + 1). With `expectedGeneration`, writes only
   * when the stored generation still equals it (0 = absent) and otherwise returns `null`.
   * `ttlSeconds` of 0 means no expiry.
   */
  write(key: string, value: string, ttlSeconds: number, expectedGeneration?: number): Promise<number | null>;
  remove(keys: readonly string[]): Promise<void>;
  /**
   * Optional: sets the time to live of an existing key (no-op when absent), without
   * changing its value or generation. Without it, retention counts from the last write.
   */
  touch?(key: string, ttlSeconds: number): Promise<void>;
  /** Takes the lock when free; `owner` is a random value only the holder knows. */
  acquireLock(key: string, owner: string, leaseMs: number): Promise<boolean>;
  /** Extends the lease only while `owner` still holds it. */
  renewLock(key: string, owner: string, leaseMs: number): Promise<boolean>;
  /** Compare-and-delete: releases only when `owner` still holds it. */
  releaseLock(key: string, owner: string): Promise<boolean>;
}
