import type { Readable } from 'node:stream';
import { brotliDecompressSync, createBrotliDecompress, createGunzip, createInflate, gunzipSync, inflateSync } from 'node:zlib';

/** Content decoding of upstream answers, bounded when buffered. */

/** Most bytes a buffered answer may inflate to: a small compressed body must not grow without bound. */
const MAX_DECODED_BYTES = 8 * 1024 * 1024;

export function decodeForInspection(buffer: Buffer, encoding: string | null): Buffer | undefined {
  const limit = { maxOutputLength: MAX_DECODED_BYTES };
  try {
    switch ((encoding ?? 'identity').trim().toLowerCase()) {
      case 'identity':
      case '':
        return buffer;
      case 'gzip':
      case 'x-gzip':
        return gunzipSync(buffer, limit);
      case 'deflate':
        return inflateSync(buffer, limit);
      case 'br':
        return brotliDecompressSync(buffer, limit);
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

/** What `isTokenRejected` sees of a buffered body: JSON when it parses, else the text. */
export function inspectBody(buffer: Buffer, headers: Headers): unknown {
  const decoded = decodeForInspection(buffer, headers.get('content-encoding'));
  if (decoded === undefined || decoded.length === 0) return undefined;
  const text = decoded.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export function decodedStream(stream: Readable, headers: Headers): Readable {
  // As fetch does: hand over the decoded body, without the encoding headers.
  const encoding = (headers.get('content-encoding') ?? '').trim().toLowerCase();
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? createGunzip()
      : encoding === 'deflate'
        ? createInflate()
        : encoding === 'br'
          ? createBrotliDecompress()
          : undefined;
  if (!decoder) return stream;
  headers.delete('content-encoding');
  headers.delete('content-length');
  stream.on('error', (error) => decoder.destroy(error));
  decoder.on('close', () => stream.destroy());
  return stream.pipe(decoder);
}
