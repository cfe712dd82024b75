/** The options of the `sop` provider, and their validation. */
import { KeyObject } from 'node:crypto';
import { configurationError } from '../../errors.js';
import { validateCommonOptions } from '../../provider/define.js';
import type { ProviderOptions } from '../../provider/types.js';
import { readPrivateKey, readPublicKey, type SopKey, type SopSignType } from './signing.js';

/** The provider's name: the default strategy name, and the `provider` of its errors. */
export const SOP_NAME = 'sop';

/** The name errors report: the strategy's (`sop-prod`, ...), or the provider's. */
export function sopName(options: { name?: string | undefined }): string {
  return options.name ?? SOP_NAME;
}

export interface SopOptions extends ProviderOptions {
  /**
   * The app id (`app_id`) the platform issued. The option is named `clientID` like every
   * other provider's; SOP has no client secret, so `clientSecret` is not used.
   */
  clientID: string;
  /** Base URL of the deployment's auth service; `/oauth2/appToAppAuth` is appended. Required. */
  authURL: string;
  /** The deployment's gateway URL, posted to as is (e.g. `https://open.example.com/`). Required. */
  gatewayURL: string;
  /** The app's RSA private key (PKCS#8 PEM, bare PKCS#8 Base64, or a KeyObject). Required. */
  privateKey: SopKey;
  /** The platform's RSA public key (SPKI PEM, bare Base64, or a KeyObject). Required. */
  platformPublicKey: SopKey;
  /** Default `RSA2` (SHA256withRSA); `RSA` is SHA1withRSA. Must match the app's platform setting. */
  signType?: SopSignType;
}

function absoluteHttpURL(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

function isPrivatePem(value: SopKey): boolean {
  return value instanceof KeyObject ? value.type === 'private' : /PRIVATE KEY-----/.test(value);
}

function isMissing(value: SopKey | undefined | null): boolean {
  return value === undefined || value === null || value === '';
}

/** Reads a key option, or throws the configuration error `unreadable`. */
function readKeyOption(read: (key: SopKey) => KeyObject, key: SopKey, unreadable: string): KeyObject {
  try {
    return read(key);
  } catch {
    throw configurationError(unreadable);
  }
}

export function validateOptions(options: SopOptions): void {
  validateCommonOptions(SOP_NAME, options, false);
  for (const [option, what, example] of [
    ['authURL', 'the base URL of your SOP deployment\'s auth service (the one serving /oauth2/appToAppAuth)', 'https://openauth.example.com'],
    ['gatewayURL', 'the URL of your SOP deployment\'s gateway, posted to as is', 'https://open.example.com/'],
  ] as const) {
    if (!absoluteHttpURL(options[option])) {
      throw configurationError(`The sop strategy needs ${option}: ${what}, an absolute http(s) URL such as "${example}". SOP is self-hosted, so there is no default.`);
    }
  }
  if (options.signType !== undefined && options.signType !== 'RSA2' && options.signType !== 'RSA') {
    throw configurationError('The sop strategy\'s signType must be "RSA2" (SHA256withRSA, the default) or "RSA" (SHA1withRSA).');
  }
  if (isMissing(options.privateKey)) {
    throw configurationError(
      "The sop strategy needs privateKey: the app's RSA private key, e.g. fs.readFileSync('app-private-key.pem', 'utf8') (PKCS#8 PEM), " +
        'the bare Base64 key from the SOP console, or a KeyObject.',
    );
  }
  const privateKey = readKeyOption(
    readPrivateKey,
    options.privateKey,
    'The sop strategy\'s privateKey could not be read as a private key: pass a PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), its bare Base64 body, or a KeyObject.',
  );
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'rsa') {
    throw configurationError('The sop strategy\'s privateKey must be an RSA private key (the gateway signs with SHA256withRSA or SHA1withRSA).');
  }
  if (isMissing(options.platformPublicKey)) {
    throw configurationError(
      "The sop strategy needs platformPublicKey: the platform's RSA public key from the SOP console, e.g. fs.readFileSync('platform-public-key.pem', 'utf8'), " +
        'used to verify every gateway answer.',
    );
  }
  if (isPrivatePem(options.platformPublicKey)) {
    throw configurationError("The sop strategy's platformPublicKey is a private key: pass the platform's public key, not a private one.");
  }
  const publicKey = readKeyOption(
    readPublicKey,
    options.platformPublicKey,
    'The sop strategy\'s platformPublicKey could not be read as a public key: pass an SPKI PEM ("-----BEGIN PUBLIC KEY-----"), its bare Base64 body, or a KeyObject.',
  );
  if (publicKey.asymmetricKeyType !== 'rsa') {
    throw configurationError("The sop strategy's platformPublicKey must be an RSA public key.");
  }
}
