import { Readable } from 'node:stream';
import { ErrorCodes, OAuthKeeperError } from '../../errors.js';
import type { ApiRequest, ProviderOptions } from '../../provider/types.js';
import type { TokenSet } from '../token-set.js';
import { decodeBuffered, decodedStream } from './decode.js';
import { holdsSecret, ScrubStream, scrubBuffer, secretForms } from './scrub.js';
import type { ApiCallResult, HeaderRecord } from './types.js';

/** What the binding attached never goes back to the caller: in headers, redirects or bodies. */

/**
 * An upstream answer must never hand the user's credentials back to the caller. A redirect that
 * repeats the request's query (servlet-style trailing-slash redirects do) would carry whatever
 * the binding put there: drop the query parameters the binding added, then drop any header that
 * still holds the access token.
 */
export function scrubCredentials(headers: Headers, sent: ApiRequest, unattached: ApiRequest, forms: readonly Buffer[]): void {
  const added = [...sent.url.searchParams.keys()].filter((key) => !unattached.url.searchParams.has(key));
  for (const name of ['location', 'content-location']) {
    const value = headers.get(name);
    if (value === null || added.length === 0) continue;
    try {
      const url = new URL(value, sent.url);
      for (const key of added) url.searchParams.delete(key);
      headers.set(name, /^[a-z][a-z0-9+.-]*:/i.test(value) ? url.toString() : url.pathname + url.search + url.hash);
    } catch {
      headers.delete(name);
    }
  }
  if (forms.length === 0) return;
  const texts = forms.map((form) => form.toString('utf8'));
  const holding: string[] = [];
  headers.forEach((value, name) => {
    if (holdsSecret(value, texts)) holding.push(name);
  });
  for (const name of holding) headers.delete(name);
}

/**
 * Everything the binding attached that must never come back: the access and refresh
 * tokens, the client secret, the credentials of an Authorization header it set, and the
 * values of the parameters it declares secret (sop's `sign`).
 */
export function attachedSecretValues(
  sent: ApiRequest,
  unattached: ApiRequest,
  tokenSet: TokenSet,
  options: ProviderOptions,
  names: readonly string[],
): Array<string | undefined> {
  const secrets: Array<string | undefined> = [tokenSet.accessToken, tokenSet.refreshToken, options.clientSecret];
  const authorization = sent.headers.get('authorization');
  if (authorization !== null && authorization !== unattached.headers.get('authorization')) {
    secrets.push(authorization, authorization.slice(authorization.indexOf(' ') + 1));
  }
  if (names.length > 0) {
    const form = /x-www-form-urlencoded/i.test(sent.headers.get('content-type') ?? '') && sent.body ? new URLSearchParams(sent.body.toString('utf8')) : undefined;
    for (const name of names) secrets.push(...sent.url.searchParams.getAll(name), ...(form?.getAll(name) ?? []));
  }
  return secrets;
}

/** The byte forms of {@link attachedSecretValues}. */
export function attachedSecrets(sent: ApiRequest, unattached: ApiRequest, tokenSet: TokenSet, options: ProviderOptions, names: readonly string[]): Buffer[] {
  return secretForms(attachedSecretValues(sent, unattached, tokenSet, options, names));
}

/** The secrets of one call, as bytes (for bodies) and as header text. */
export interface Secrets {
  readonly forms: readonly Buffer[];
  readonly texts: readonly string[];
}

/** How many sets of secrets {@link SecretFormCache} remembers. */
const CACHED_SECRET_SETS = 64;

/**
 * The forms of the secrets of recent calls: a session's next call sends the same token,
 * and working out its encoded forms costs more than looking them up. Bounded: the oldest
 * set goes first.
 */
export class SecretFormCache {
  readonly #sets = new Map<string, Secrets>();

  get(values: ReadonlyArray<string | undefined>): Secrets {
    let key = '';
    for (const value of values) key += value === undefined ? '-;' : `${value.length};${value}`;
    let secrets = this.#sets.get(key);
    if (secrets === undefined) {
      const forms = secretForms(values);
      secrets = Object.freeze({ forms, texts: forms.map((form) => form.toString('utf8')) });
      if (this.#sets.size >= CACHED_SECRET_SETS) this.#sets.delete(this.#sets.keys().next().value!);
      this.#sets.set(key, secrets);
    }
    return secrets;
  }
}

/** {@link scrubCredentials} for a {@link HeaderRecord}. */
export function scrubHeaderRecord(headers: HeaderRecord, sent: ApiRequest, unattached: ApiRequest, texts: readonly string[]): void {
  // Only a query the binding added can come back in a redirect.
  if (sent.url.search !== unattached.url.search) {
    const added = [...sent.url.searchParams.keys()].filter((key) => !unattached.url.searchParams.has(key));
    for (const name of added.length === 0 ? [] : ['location', 'content-location']) {
      const value = headers[name];
      if (value === undefined) continue;
      try {
        const url = new URL(value, sent.url);
        for (const key of added) url.searchParams.delete(key);
        headers[name] = /^[a-z][a-z0-9+.-]*:/i.test(value) ? url.toString() : url.pathname + url.search + url.hash;
      } catch {
        delete headers[name];
      }
    }
  }
  if (texts.length === 0) return;
  for (const name in headers) {
    if (holdsSecret(headers[name]!, texts)) delete headers[name];
  }
}

/**
 * The answer with every attached secret masked (see scrub.ts). A compressed answer is
 * decoded first, as the caller would; one in an encoding that cannot be checked is refused.
 */
export async function scrubResult(result: ApiCallResult, forms: readonly Buffer[], provider: string): Promise<ApiCallResult> {
  if (forms.length === 0 || result.body === null) return result;
  const encoding = (result.headers.get('content-encoding') ?? 'identity').trim().toLowerCase();
  if (Buffer.isBuffer(result.body)) {
    const decoded = await decodeBuffered(result.body, encoding);
    if (decoded === undefined) throw uncheckable(provider, result.body);
    if (decoded !== result.body) {
      result.headers.delete('content-encoding');
      result.headers.delete('content-length');
    }
    return { ...result, body: scrubBuffer(decoded, forms) };
  }
  if (!STREAM_DECODABLE.has(encoding)) throw uncheckable(provider, result.body);
  const plain = decodedStream(result.body, result.headers);
  const scrubbed = new ScrubStream(forms);
  plain.on('error', (error) => scrubbed.destroy(error));
  scrubbed.on('close', () => plain.destroy());
  return { ...result, body: plain.pipe(scrubbed) };
}

/** The content encodings a streamed answer can be decoded from, to be checked. */
export const STREAM_DECODABLE: ReadonlySet<string> = new Set(['identity', '', 'gzip', 'x-gzip', 'deflate', 'br']);

export function uncheckable(provider: string, body?: Buffer | Readable): OAuthKeeperError {
  if (body instanceof Readable) body.destroy();
  return new OAuthKeeperError(
    ErrorCodes.API_UPSTREAM_FAILED,
    `The ${provider} API answered in a content encoding that cannot be decoded here, so it cannot be checked for the credentials it was sent.`,
    { provider },
  );
}
