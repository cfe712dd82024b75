import { randomBytes } from 'node:crypto';
import { TokenCipher } from '../../../src/lib/cipher';
import { ErrorCodes, OAuthKeeperError } from '../../../src/errors';

describe('TokenCipher (AES-256-GCM with a key ring)', () => {
  const keyA = randomBytes(32);
  const keyB = randomBytes(32);

  it('round-trips and never shows the plaintext', () => {
    const cipher = new TokenCipher([keyA]);
    const sealed = cipher.encrypt('{"accessToken":"secret-value"}', 'k1');
    expect(sealed).not.toContain('secret-value');
    expect(sealed.split('.')).toHaveLength(5);
    expect(cipher.decrypt(sealed, 'k1')).toBe('{"accessToken":"secret-value"}');
  });

  it('uses a fresh IV each time', () => {
    const cipher = new TokenCipher([keyA]);
    expect(cipher.encrypt('same', 'k')).not.toBe(cipher.encrypt('same', 'k'));
  });

  it('rotates: the first key encrypts, every key decrypts', () => {
    const old = new TokenCipher([keyA]);
    const sealedOld = old.encrypt('v', 'k');
    const rotated = new TokenCipher([keyB.toString('base64'), keyA.toString('hex')]);
    expect(rotated.decrypt(sealedOld, 'k')).toBe('v');
    const sealedNew = rotated.encrypt('v2', 'k');
    expect(() => old.decrypt(sealedNew, 'k')).toThrow(OAuthKeeperError);
    expect(new TokenCipher([keyB]).decrypt(sealedNew, 'k')).toBe('v2');
  });

  it('binds a value to its key (AAD): moved to another key it does not decrypt', () => {
    const cipher = new TokenCipher([keyA]);
    const sealed = cipher.encrypt('PLAINTEXT-MARKER', 'owner-1:di');
    try {
      cipher.decrypt(sealed, 'owner-2:di');
      throw new Error('decrypted');
    } catch (error) {
      expect((error as OAuthKeeperError).code).toBe(ErrorCodes.TOKEN_DECRYPTION_FAILED);
      expect((error as Error).message).not.toContain('PLAINTEXT-MARKER');
    }
  });

  it('refuses a tampered ciphertext', () => {
    const cipher = new TokenCipher([keyA]);
    const parts = cipher.encrypt('value', 'k').split('.');
    parts[4] = Buffer.from('tampered').toString('base64url');
    expect(() => cipher.decrypt(parts.join('.'), 'k')).toThrow(/could not be decrypted/);
  });

  it('names the fix for bad keys', () => {
    expect(() => new TokenCipher([])).toThrow(/at least one 32-byte key/);
    expect(() => new TokenCipher(['short'])).toThrow(/encryptionKeys\[0\] is \d+ bytes; AES-256-GCM needs exactly 32\. Generate one with/);
    try {
      new TokenCipher([randomBytes(16)]);
    } catch (error) {
      expect((error as OAuthKeeperError).code).toBe(ErrorCodes.CONFIGURATION_INVALID);
    }
  });
});
