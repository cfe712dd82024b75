import { configurationError } from '../errors.js';

/**
 * Token owners. A session's own owner is a random id kept in the session (base64url, no
 * colon); an owner the app chooses (its user id) is kept as `u:<key>`, so the two kinds
 * can never name the same token sets, whatever key the app picks.
 */

const APP_OWNER_PREFIX = 'u:';

/**
 * What an owner key the app chooses may be: 1–128 characters of `A–Z a–z 0–9` and
 * `. _ - @ + = ~ :`, starting with a letter or digit. It becomes part of Redis keys (inside
 * the `{…}` hash tag), so braces, glob characters, spaces and control characters are out.
 */
export const OWNER_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@+=~:-]{0,127}$/;

/** The store's owner id for an owner key the app chose; throws CONFIGURATION_INVALID naming the fix. */
export function appOwner(key: unknown, who = 'The owner key'): string {
  if (typeof key !== 'string' || !OWNER_KEY_PATTERN.test(key)) {
    const what = typeof key === 'string' ? `a string of ${key.length} characters that does not fit` : `a ${key === null ? 'null' : typeof key}`;
    throw configurationError(
      `${who} is ${what}: an owner key is 1 to 128 characters of A-Z a-z 0-9 . _ - @ + = ~ : starting with a letter or digit. ` +
        'Use your stable user id, or a hash of it (e.g. hex SHA-256) when it holds other characters.',
    );
  }
  return APP_OWNER_PREFIX + key;
}

/** True for an owner id made by {@link appOwner} (the app's key), false for a session's random one. */
export function isAppOwner(owner: string): boolean {
  return owner.startsWith(APP_OWNER_PREFIX);
}

/** The app's key of an owner id made by {@link appOwner}; `null` for a session's random owner. */
export function ownerKeyOf(owner: string): string | null {
  return isAppOwner(owner) ? owner.slice(APP_OWNER_PREFIX.length) : null;
}
