/**
 * The gateway's answer: finding the exact raw text of its `<method>_response` node (the
 * text the platform signed) and verifying that signature before the node is used.
 */
import { ErrorCodes, OAuthKeeperError, type ErrorCode } from '../../errors.js';
import { isRecord, parseJson } from '../../lib/http.js';
import { SOP_NAME } from './options.js';
import { sopVerify, type SopKey, type SopSignType } from './signing.js';

function skipWhitespace(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
    i += 1;
  }
  return i;
}

/** `i` is at an opening quote; returns the index after the closing quote, or -1. */
function skipString(text: string, i: number): number {
  if (text[i] !== '"') return -1;
  let j = i + 1;
  while (j < text.length) {
    const c = text.charCodeAt(j);
    if (c === 0x22) return j + 1;
    if (c < 0x20) return -1;
    if (c === 0x5c) {
      const next = text[j + 1];
      if (next === 'u') {
        if (!/^[0-9a-fA-F]{4}$/.test(text.slice(j + 2, j + 6))) return -1;
        j += 6;
      } else if (next !== undefined && '"\\/bfnrt'.includes(next)) {
        j += 2;
      } else {
        return -1;
      }
      continue;
    }
    j += 1;
  }
  return -1;
}

/** `i` is at the first character of a JSON value; returns the index after it, or -1. */
function skipValue(text: string, i: number): number {
  const first = text[i];
  if (first === undefined) return -1;
  if (first === '"') return skipString(text, i);
  if (first === '{' || first === '[') {
    const open: string[] = [];
    let j = i;
    while (j < text.length) {
      const c = text[j]!;
      if (c === '"') {
        j = skipString(text, j);
        if (j < 0) return -1;
        continue;
      }
      if (c === '{' || c === '[') open.push(c);
      else if (c === '}' || c === ']') {
        if (open.pop() !== (c === '}' ? '{' : '[')) return -1;
        if (open.length === 0) return j + 1;
      }
      j += 1;
    }
    return -1;
  }
  const literal = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 64));
  return literal ? i + literal[0].length : -1;
}

/**
 * The exact raw text of the top-level member `nodeName` of a JSON object: the characters
 * after `"<nodeName>":` (and any whitespace) up to the end of its value, which in the
 * gateway's compact answers is up to `,"sign"`. It is a string- and nesting-aware scan
 * of the top-level object, so quotes, braces or `,"sign"` inside strings cannot fool it.
 * Returns `undefined` when the text is not one JSON object, the member is absent, or it
 * appears more than once (ambiguous: never guess which copy was signed).
 */
export function extractResponseNode(body: string, nodeName: string): string | undefined {
  let i = skipWhitespace(body, 0);
  if (body[i] !== '{') return undefined;
  i = skipWhitespace(body, i + 1);
  let found: string | undefined;
  let seen = false;
  if (body[i] === '}') return undefined;
  for (;;) {
    const keyEnd = skipString(body, i);
    if (keyEnd < 0) return undefined;
    const key = JSON.parse(body.slice(i, keyEnd)) as string;
    i = skipWhitespace(body, keyEnd);
    if (body[i] !== ':') return undefined;
    i = skipWhitespace(body, i + 1);
    const valueEnd = skipValue(body, i);
    if (valueEnd < 0) return undefined;
    if (key === nodeName) {
      if (seen) return undefined;
      seen = true;
      found = body.slice(i, valueEnd);
    }
    i = skipWhitespace(body, valueEnd);
    if (body[i] === ',') {
      i = skipWhitespace(body, i + 1);
      continue;
    }
    if (body[i] !== '}') return undefined;
    if (skipWhitespace(body, i + 1) !== body.length) return undefined;
    return found;
  }
}

/** `open.auth.token.app` → `open_auth_token_app_response`. */
export function responseNodeName(method: string): string {
  return `${method.replace(/\./g, '_')}_response`;
}

export interface VerifiedSopResponse {
  /** `<method>_response`, or `error_response`. */
  nodeName: string;
  /** The node's raw text, exactly as signed and verified. */
  raw: string;
  /** The node, parsed from the verified raw text. */
  node: Record<string, unknown>;
}

export interface VerifySopResponseOptions {
  signType?: SopSignType;
  /** Provider (strategy) name for error messages. Default `sop`. */
  provider?: string;
  /** Error code for an answer that is not a gateway answer at all. Default TOKEN_RESPONSE_MALFORMED. */
  malformedCode?: ErrorCode;
}

/** A gateway answer's response node, found but not yet verified. */
export interface LocatedSopResponse {
  /** `<method>_response`, or `error_response`. */
  nodeName: string;
  /** The node's raw text, exactly as the platform would have signed it. */
  raw: string;
  /** The answer's `sign`; `undefined` when it carries none (absent, empty or not a string). */
  signature: string | undefined;
}

function malformedAnswer(method: string, why: string, length: number, options: VerifySopResponseOptions): OAuthKeeperError {
  const provider = options.provider ?? SOP_NAME;
  return new OAuthKeeperError(options.malformedCode ?? ErrorCodes.TOKEN_RESPONSE_MALFORMED, `The ${provider} gateway's answer to ${method} ${why}.`, {
    provider,
    details: { method, length },
  });
}

/**
 * Finds the response node of a gateway answer to `method` (or its `error_response`) and
 * its signature, without trusting either. Throws `malformedCode` for a non-answer.
 */
export function locateSopResponse(body: string, method: string, options: VerifySopResponseOptions = {}): LocatedSopResponse {
  const parsed = parseJson(body);
  let nodeName = responseNodeName(method);
  let raw = isRecord(parsed) ? extractResponseNode(body, nodeName) : undefined;
  if (raw === undefined && isRecord(parsed) && parsed[nodeName] === undefined) {
    nodeName = 'error_response';
    raw = extractResponseNode(body, nodeName);
  }
  if (!isRecord(parsed) || raw === undefined) {
    const why = isRecord(parsed) ? `has no single ${responseNodeName(method)} (or error_response) node` : 'is not a JSON object';
    throw malformedAnswer(method, why, body.length, options);
  }
  const signature = parsed['sign'];
  return { nodeName, raw, signature: typeof signature === 'string' && signature.length > 0 ? signature : undefined };
}

/** The parsed node of a located answer, or `undefined` when it is not a JSON object. */
export function parseNode(located: LocatedSopResponse): Record<string, unknown> | undefined {
  const node = parseJson(located.raw);
  return isRecord(node) ? node : undefined;
}

/**
 * Verifies a located answer's signature over the raw text of its node with the platform's
 * public key, then parses that same verified text. A missing or wrong signature throws
 * RESPONSE_SIGNATURE_INVALID.
 */
export function verifyLocatedResponse(
  located: LocatedSopResponse,
  method: string,
  platformPublicKey: SopKey,
  options: VerifySopResponseOptions = {},
): VerifiedSopResponse {
  const provider = options.provider ?? SOP_NAME;
  const { nodeName, raw, signature } = located;
  const refused = (why: string) =>
    new OAuthKeeperError(
      ErrorCodes.RESPONSE_SIGNATURE_INVALID,
      `The ${provider} gateway's answer to ${method} ${why}, so it was refused. ` +
        'If this persists, check that platformPublicKey is the platform public key of this deployment and that signType matches the app.',
      { provider, details: { method, nodeName } },
    );
  if (signature === undefined) throw refused('carries no signature');
  if (!sopVerify(raw, signature, platformPublicKey, options.signType ?? 'RSA2')) throw refused('carries a signature that does not verify');
  const node = parseNode(located);
  if (node === undefined) throw malformedAnswer(method, `has a ${nodeName} that is not a JSON object`, raw.length, options);
  return { nodeName, raw, node };
}

/**
 * Verifies a gateway answer's `sign` over the raw text of its response node with the
 * platform's public key, then parses that same verified text. Never re-serializes.
 * A missing or wrong signature throws RESPONSE_SIGNATURE_INVALID.
 */
export function verifySopResponse(
  body: string,
  method: string,
  platformPublicKey: SopKey,
  options: VerifySopResponseOptions = {},
): VerifiedSopResponse {
  return verifyLocatedResponse(locateSopResponse(body, method, options), method, platformPublicKey, options);
}

/** A node field the gateway sends as a string or a number, as a string. */
export function nodeText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}
