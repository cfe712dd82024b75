import { PassThrough, type Readable } from 'node:stream';

/** Reading bodies with limits: whole when small, otherwise handed on as a stream. */

export function noop(): void {}

export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error('The API call was aborted.', { cause: value });
}

export type ReadUpTo = { complete: true; buffer: Buffer } | { complete: false; rest: Readable };

/**
 * Reads a stream until it ends or holds more than `limit` bytes. When the limit is
 * passed, the bytes read so far and the unread remainder come back as one stream.
 */
export function readUpTo(stream: Readable, limit: number): Promise<ReadUpTo> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const onData = (chunk: Buffer | string) => {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      chunks.push(bytes);
      size += bytes.length;
      if (size <= limit) return;
      stream.pause();
      cleanup();
      const rest = new PassThrough();
      rest.on('error', noop);
      for (const c of chunks) rest.write(c);
      stream.on('error', (error) => rest.destroy(error));
      stream.pipe(rest);
      resolve({ complete: false, rest });
    };
    const onEnd = () => {
      cleanup();
      resolve({ complete: true, buffer: Buffer.concat(chunks) });
    };
    const onError = (error: unknown) => {
      cleanup();
      reject(error);
    };
    const onClose = () => {
      cleanup();
      reject(new Error('the stream closed before its end'));
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

