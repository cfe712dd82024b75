import type { Readable, Transform } from 'node:stream';
import { promisify } from 'node:util';
import { brotliDecompress, createBrotliDecompress, createGunzip, createInflate, gunzip, inflate, type ZlibOptions } from 'node:zlib';

/**
 * Content decoding of upstream answers. A buffered answer is inflated off the event loop
 * (zlib's thread pool) and cut at `MAX_DECODED_BYTES`: a small compressed body (a "gzip
 * bomb") can neither grow without bound nor stall other requests.
 */

/** Most bytes a buffered answer may inflate to. */
export const MAX_DECODED_BYTES = 8 * 1024 * 1024;

const DECODERS: Record<string, (buffer: Buffer, options: ZlibOptions) => Promise<Buffer>> = {
  gzip: promisify(gunzip),
  'x-gzip': promisify(gunzip),
  deflate: promisify(inflate),
  br: promisify(brotliDecompress) as (buffer: Buffer, options: ZlibOptions) => Promise<Buffer>,
};

/** The decoded bytes, or undefined for an unknown encoding, a broken body or one beyond `limit`. */
export async function decodeBuffered(buffer: Buffer, encoding: string | null, limit = MAX_DECODED_BYTES): Promise<Buffer | undefined> {
  const name = (encoding ?? 'identity').trim().toLowerCase();
  if (name === 'identity' || name === '') return buffer;
  const decode = DECODERS[name];
  if (!decode) return undefined;
  try {
    return await decode(buffer, { maxOutputLength: limit });
  } catch {
    return undefined;
  }
}

/** What `isTokenRejected` sees of a buffered body: JSON when it parses, else the text. */
export async function inspectBody(buffer: Buffer, headers: Headers): Promise<unknown> {
  const decoded = await decodeBuffered(buffer, headers.get('content-encoding'));
  if (decoded === undefined || decoded.length === 0) return undefined;
  const text = decoded.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** A streaming decoder for `encoding` (gzip, deflate, br), or undefined for identity and unknown ones. */
export function decoderFor(encoding: string): Transform | undefined {
  if (encoding === 'gzip' || encoding === 'x-gzip') return createGunzip();
  if (encoding === 'deflate') return createInflate();
  if (encoding === 'br') return createBrotliDecompress();
  return undefined;
}

export function decodedStream(stream: Readable, headers: Headers): Readable {
  // As fetch does: hand over the decoded body, without the encoding headers.
  const decoder = decoderFor((headers.get('content-encoding') ?? '').trim().toLowerCase());
  if (!decoder) return stream;
  headers.delete('content-encoding');
  headers.delete('content-length');
  stream.on('error', (error) => decoder.destroy(error));
  decoder.on('close', () => stream.destroy());
  return stream.pipe(decoder);
}
