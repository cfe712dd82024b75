/** RSA signing of gateway requests, verification of signatures, and the app's keys. */
import { createPrivateKey, createPublicKey, KeyObject, sign as rsaSign, verify as rsaVerify } from 'node:crypto';

/** `RSA2` = SHA256withRSA (the default), `RSA` = SHA1withRSA. */
export type SopSignType = 'RSA2' | 'RSA';

/** An RSA key: a PEM string, the bare Base64 body SOP consoles hand out, or a KeyObject. */
export type SopKey = string | KeyObject;

/**
 * The platform's server clock runs on China time; the gateway refuses a request whose
 * `timestamp` (`yyyy-MM-dd HH:mm:ss`, no zone) is more than 300 s off. Computed from
 * UTC so the machine's own time zone never matters.
 */
export function chinaTimestamp(date: Date = new Date()): string {
  const china = new Date(date.getTime() + 8 * 3600_000);
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    `${String(china.getUTCFullYear()).padStart(4, '0')}-${two(china.getUTCMonth() + 1)}-${two(china.getUTCDate())} ` +
    `${two(china.getUTCHours())}:${two(china.getUTCMinutes())}:${two(china.getUTCSeconds())}`
  );
}

/** Code-unit order, which is ASCII order for the gateway's ASCII parameter names. */
function byAscii(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The string a request signature covers: every parameter except `sign`, empty values
 * dropped, sorted by name, `name=value` joined with `&`, values raw (not URL-encoded).
 */
export function sopSignContent(params: Readonly<Record<string, string | undefined | null>>): string {
  return Object.keys(params)
    .filter((key) => key !== 'sign')
    .filter((key) => {
      const value = params[key];
      return typeof value === 'string' && value.length > 0;
    })
    .sort(byAscii)
    .map((key) => `${key}=${params[key] as string}`)
    .join('&');
}

function digestOf(signType: SopSignType): 'sha256' | 'sha1' {
  return signType === 'RSA' ? 'sha1' : 'sha256';
}

/** Signs UTF-8 text the gateway's way: RSA PKCS#1 v1.5, standard Base64. */
export function sopSign(content: string, privateKey: SopKey, signType: SopSignType = 'RSA2'): string {
  return rsaSign(digestOf(signType), Buffer.from(content, 'utf8'), readPrivateKey(privateKey)).toString('base64');
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Verifies a standard-Base64 signature over UTF-8 text; false (never a throw) for anything malformed. */
export function sopVerify(content: string, signature: string, publicKey: SopKey, signType: SopSignType = 'RSA2'): boolean {
  if (typeof signature !== 'string' || signature.length % 4 !== 0 || !BASE64.test(signature)) return false;
  try {
    return rsaVerify(digestOf(signType), Buffer.from(content, 'utf8'), readPublicKey(publicKey), Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/**
 * Returns the parameters to send: empty values dropped (the gateway would sign them,
 * SDKs would not: never send any), plus `sign`.
 */
export function signSopParameters(
  params: Readonly<Record<string, string | undefined | null>>,
  privateKey: SopKey,
  signType: SopSignType = 'RSA2',
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(params)) {
    if (key !== 'sign' && typeof value === 'string' && value.length > 0) out[key] = value;
  }
  out['sign'] = sopSign(sopSignContent(out), privateKey, signType);
  return out;
}

// ---------------------------------------------------------------------------
// Keys

/** A PEM as is; a bare Base64 body (whitespace ignored) as DER of the given type. */
function keyInput<T extends 'pkcs8' | 'spki'>(key: string, type: T): string | { key: Buffer; format: 'der'; type: T } {
  const text = key.trim();
  if (text.startsWith('-----BEGIN')) return text;
  return { key: Buffer.from(text.replace(/\s+/g, ''), 'base64'), format: 'der', type };
}

export function readPrivateKey(key: SopKey): KeyObject {
  return key instanceof KeyObject ? key : createPrivateKey(keyInput(key, 'pkcs8'));
}

export function readPublicKey(key: SopKey): KeyObject {
  return key instanceof KeyObject ? key : createPublicKey(keyInput(key, 'spki'));
}

interface SopKeys {
  privateKey: KeyObject;
  platformPublicKey: KeyObject;
}

/** The options signing needs (a `SopOptions` is one). */
export interface SigningOptions {
  privateKey: SopKey;
  platformPublicKey: SopKey;
  signType?: SopSignType;
}

/** Parsed once per (frozen) options object: the strategy hands hooks the same object every time. */
const keyCache = new WeakMap<object, SopKeys>();

export function keysOf(options: SigningOptions): SopKeys {
  let keys = keyCache.get(options);
  if (!keys) {
    keys = { privateKey: readPrivateKey(options.privateKey), platformPublicKey: readPublicKey(options.platformPublicKey) };
    keyCache.set(options, keys);
  }
  return keys;
}

export function signTypeOf(options: Pick<SigningOptions, 'signType'>): SopSignType {
  return options.signType ?? 'RSA2';
}
