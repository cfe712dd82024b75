import { generateKeyPairSync, type KeyObject } from 'node:crypto';

export interface RsaKeyPair {
  privatePem: string;
  publicPem: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** A fresh 2048-bit RSA key pair, as key objects and as PEM (PKCS#8 private, SPKI public). */
export function rsaKeyPair(): RsaKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKey,
    publicKey,
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}
