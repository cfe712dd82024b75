import zlib from 'node:zlib';
import { decodeBuffered, inspectBody, MAX_DECODED_BYTES } from '../../../../src/lib/api/decode';

/** 10 MiB of zeros, gzip-compressed to about 10 KiB: a "gzip bomb" an upstream could send. */
const BOMB_SIZE = 10 * 1024 * 1024;
const bomb = zlib.gzipSync(Buffer.alloc(BOMB_SIZE));

describe('decoding buffered upstream answers', () => {
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('a 10 MiB gzip bomb is cut at the limit, off the event loop', async () => {
    expect(bomb.length).toBeLessThan(64 * 1024);
    expect(BOMB_SIZE).toBeGreaterThan(MAX_DECODED_BYTES);
    const syncCalls = [jest.spyOn(zlib, 'gunzipSync'), jest.spyOn(zlib, 'inflateSync'), jest.spyOn(zlib, 'brotliDecompressSync')];
    // The loop keeps turning while the bomb inflates on zlib's thread pool.
    let turns = 0;
    let spinning = true;
    const spin = () => {
      turns += 1;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    const decoded = await decodeBuffered(bomb, 'gzip');
    spinning = false;
    expect(decoded).toBeUndefined();
    expect(turns).toBeGreaterThan(0);
    for (const spy of syncCalls) expect(spy).not.toHaveBeenCalled();
  });

  it('within a larger limit the same body decodes whole; identity passes as it is', async () => {
    expect((await decodeBuffered(bomb, 'gzip', 16 * 1024 * 1024))?.length).toBe(BOMB_SIZE);
    const plain = Buffer.from('{"a":1}');
    expect(await decodeBuffered(plain, null)).toBe(plain);
    expect(await decodeBuffered(plain, ' Identity ')).toBe(plain);
  });

  it('every encoding fetch knows, and undefined for an unknown one or a broken body', async () => {
    const text = Buffer.from('{"error":"invalid_token"}');
    expect((await decodeBuffered(zlib.deflateSync(text), 'deflate'))?.toString()).toBe(text.toString());
    expect((await decodeBuffered(zlib.brotliCompressSync(text), 'br'))?.toString()).toBe(text.toString());
    expect(await decodeBuffered(text, 'compress')).toBeUndefined();
    expect(await decodeBuffered(Buffer.from('not gzip'), 'gzip')).toBeUndefined();
  });

  it('what isTokenRejected sees of a bomb is nothing, not 10 MiB of text', async () => {
    expect(await inspectBody(bomb, new Headers({ 'content-encoding': 'gzip' }))).toBeUndefined();
    expect(await inspectBody(zlib.gzipSync('{"error":"invalid_token"}'), new Headers({ 'content-encoding': 'gzip' }))).toEqual({ error: 'invalid_token' });
  });
});
