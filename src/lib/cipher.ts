import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { configurationError, ErrorCodes, OAuthKeeperError } from '../errors.js';

/** A 32-byte key as a Buffer, or as base64 / base64url / 64 hex characters. */
export type EncryptionKey = string | Uint8Array;

interface Keyed {
  id: string;
  key: Buffer;
}

const FORMAT = 'v1';

function decodeKey(input: EncryptionKey, index: number): Buffer {
  let key: Buffer;
  if (typeof input === 'string') {
    const text = input.trim();
    key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  } else {
    key = Buffer.from(input);
  }
  if (key.length !== 32) {
    throw configurationError(
      `encryptionKeys[${index}] is ${key.length} bytes; AES-256-GCM needs exactly 32. ` +
        `Generate one with: node -e "console.log(require('crypto').randomBytes(32).toString('base64'))"`,
    );
  }
  return key;
}

/**
 * AES-256-GCM with a key ring: the first key encrypts, every key decrypts, so keys
 * can be rotated by putting the new one first and dropping the old one once every
 * stored value has been rewritten (every refresh and login rewrites).
 * `aad` binds a ciphertext to where it is stored, so a value cannot be moved to another
 * session's key and still decrypt.
 */
export class TokenCipher {
  readonly #keys: Keyed[];

  constructor(keys: readonly EncryptionKey[]) {
    if (!Array.isArray(keys) || keys.length === 0) {
      throw configurationError(
        'encryptionKeys must hold at least one 32-byte key (the first encrypts, all decrypt).',
      );
    }
    this.#keys = keys.map((k, i) => {
      const key = decodeKey(k, i);
      return { id: createHash('sha256').update(key).digest('base64url').slice(0, 8), key };
    });
  }

  encrypt(plaintext: string, aad: string): string {
    const { id, key } = this.#keys[0]!;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [FORMAT, id, iv.toString('base64url'), tag.toString('base64url'), body.toString('base64url')].join('.');
  }

  decrypt(sealed: string, aad: string): string {
    const parts = sealed.split('.');
    const fail = (why: string, cause?: unknown) =>
      new OAuthKeeperError(
        ErrorCodes.TOKEN_DECRYPTION_FAILED,
        `A stored token set could not be decrypted (${why}). If encryption keys were rotated, keep the old key ` +
          'in encryptionKeys (after the new one) until stored tokens have been rewritten.',
        { cause },
      );
    if (parts.length !== 5 || parts[0] !== FORMAT) throw fail('unknown format');
    const [, id, iv, tag, body] = parts as [string, string, string, string, string];
    const entry = this.#keys.find((k) => k.id === id);
    if (!entry) throw fail('no configured key matches its key id');
    try {
      const decipher = createDecipheriv('aes-256-gcm', entry.key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    } catch (cause) {
      throw fail('authentication failed', cause);
    }
  }
}
