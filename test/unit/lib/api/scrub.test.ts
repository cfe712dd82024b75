import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Masker, ScrubStream, scrubBuffer, secretForms } from '../../../../src/lib/api/scrub';

const TOKEN = 'tok/en+with=chars"and\\more';

async function throughStream(chunks: Buffer[], forms: Buffer[]): Promise<string> {
  const stream = new ScrubStream(forms);
  const out: Buffer[] = [];
  stream.on('data', (c: Buffer) => out.push(c));
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await once(stream, 'end');
  return Buffer.concat(out).toString('utf8');
}

describe('secretForms', () => {
  it('leaves out a form that holds another: masking the one it holds leaves no secret', () => {
    const forms = secretForms(['token-abcdefgh-123', 'Bearer token-abcdefgh-123']).map((f) => f.toString());
    expect(forms).toEqual(['token-abcdefgh-123']);
    const out = scrubBuffer(Buffer.from('{"echo":"Bearer token-abcdefgh-123"}'), secretForms(['token-abcdefgh-123', 'Bearer token-abcdefgh-123']));
    expect(out.toString()).toBe(`{"echo":"Bearer ${'*'.repeat(18)}"}`);
  });

  it('covers the raw, percent-encoded and JSON-escaped forms, longest first, and ignores short values', () => {
    const forms = secretForms([TOKEN, 'short', undefined]).map((f) => f.toString());
    expect(forms).toEqual(expect.arrayContaining([TOKEN, encodeURIComponent(TOKEN), JSON.stringify(TOKEN).slice(1, -1)]));
    expect(forms).not.toContain('short');
    const lengths = forms.map((f) => f.length);
    expect(lengths).toEqual([...lengths].sort((a, b) => b - a));
  });
});

describe('scrubBuffer', () => {
  const forms = secretForms([TOKEN]);

  it('masks every form with stars of the same length and leaves the rest', () => {
    const text = `a ${TOKEN} b ${encodeURIComponent(TOKEN)} c ${JSON.stringify({ t: TOKEN })}`;
    const out = scrubBuffer(Buffer.from(text), forms).toString();
    expect(out.length).toBe(text.length);
    expect(out).not.toContain(TOKEN);
    expect(out).not.toContain(encodeURIComponent(TOKEN));
    expect(out.startsWith('a ')).toBe(true);
    expect(JSON.parse(out.slice(out.indexOf('{')))).toEqual({ t: '*'.repeat(JSON.stringify(TOKEN).length - 2) });
  });

  it('returns the very buffer when there is nothing to mask', () => {
    const body = Buffer.from('nothing here');
    expect(scrubBuffer(body, forms)).toBe(body);
  });
});

describe('ScrubStream', () => {
  const forms = secretForms([TOKEN]);
  const text = `before ${TOKEN} middle ${encodeURIComponent(TOKEN)} after`;
  const expected = scrubBuffer(Buffer.from(text), forms).toString();

  it('masks a secret split at every possible point between two chunks', async () => {
    const bytes = Buffer.from(text);
    for (let cut = 0; cut <= bytes.length; cut += 1) {
      expect(await throughStream([bytes.subarray(0, cut), bytes.subarray(cut)], forms)).toBe(expected);
    }
  });

  it('masks a secret sent one byte per chunk', async () => {
    const bytes = Buffer.from(text);
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    expect(await throughStream(chunks, forms)).toBe(expected);
  });

  it('holds back nothing that cannot begin a secret: a chunk flows on before the stream ends', async () => {
    const stream = new ScrubStream(forms);
    const first = once(stream, 'data');
    stream.write(Buffer.from('plain text that is no secret.'));
    const [chunk] = (await first) as [Buffer];
    expect(chunk.toString()).toBe('plain text that is no secret.');
    stream.end();
  });

  it('holds back only the end that could begin a secret, until the next chunk tells', async () => {
    const stream = new ScrubStream(forms);
    const out: string[] = [];
    stream.on('data', (c: Buffer) => out.push(c.toString()));
    stream.write(Buffer.from(`abc ${TOKEN.slice(0, 5)}`));
    await new Promise((r) => setImmediate(r));
    expect(out.join('')).toBe('abc ');
    stream.end(Buffer.from(' not the rest'));
    await once(stream, 'end');
    expect(out.join('')).toBe(`abc ${TOKEN.slice(0, 5)} not the rest`);
  });
});

describe('Masker', () => {
  it('masks like scrubBuffer on the whole, however the answer is cut into chunks (seams, one-byte chunks, repeated prefixes)', () => {
    const forms = secretForms(['sandbox-secret', 'token-abcdefgh-123', 'Bearer token-abcdefgh-123']);
    // A filler made of the secrets' own first bytes, so that ends are held back often.
    const whole = Buffer.from(`ssss sandbox-secre ${'s'.repeat(40)}sandbox-secret tok Bearer token-abcdefgh-123 sandbox-secret${'s'.repeat(30)}token-abcdefgh-12`);
    const expected = scrubBuffer(Buffer.from(whole), forms);
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 300; round += 1) {
      const copy = Buffer.from(whole);
      const masker = new Masker(forms);
      const out: Buffer[] = [];
      for (let at = 0; at < copy.length; ) {
        const size = round % 3 === 0 ? 1 : 1 + random(round % 2 === 0 ? 40 : 8);
        masker.push(copy.subarray(at, at + size), (ready) => out.push(Buffer.from(ready)) > 0);
        at += size;
      }
      out.push(masker.flush());
      expect(Buffer.concat(out).toString()).toBe(expected.toString());
    }
  });
});

describe('Masker on large chunks (searched from each form\'s rarest byte)', () => {
  const secrets = ['sandbox-secret', 'tok-ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789abcdef', 'z9z9z9z9z9'];
  const forms = secretForms(secrets);
  const fillers: Array<[string, (n: number) => Buffer]> = [
    ['a body of one byte that begins a secret', (n) => Buffer.alloc(n, 's')],
    ['random bytes', (n) => randomBytes(n)],
    ['text made of the secrets\' own bytes', (n) => Buffer.from('sandbox-secre tok-ABC z9z9 '.repeat(Math.ceil(n / 27)).slice(0, n))],
  ];

  it.each(fillers)('masks like scrubBuffer on the whole: %s, secrets anywhere, across seams, in chunks of 8–70 KiB', (_name, filler) => {
    let seed = 11;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 12; round += 1) {
      const whole = filler(400_000);
      for (let i = 0; i < 40; i += 1) {
        const secret = Buffer.from(secrets[random(secrets.length)]!);
        secret.copy(whole, random(whole.length - secret.length));
      }
      // And some right at the front and the end.
      Buffer.from(secrets[0]!).copy(whole, 0);
      Buffer.from(secrets[1]!).copy(whole, whole.length - secrets[1]!.length);
      const expected = scrubBuffer(Buffer.from(whole), forms);
      const masker = new Masker(forms);
      const out: Buffer[] = [];
      for (let at = 0; at < whole.length; ) {
        const size = 8192 + random(64 * 1024);
        masker.push(Buffer.from(whole.subarray(at, at + size)), (ready) => out.push(Buffer.from(ready)) > 0);
        at += size;
      }
      out.push(masker.flush());
      const got = Buffer.concat(out);
      expect(got.length).toBe(whole.length);
      expect(got.equals(expected)).toBe(true);
      for (const secret of secrets) expect(got.includes(Buffer.from(secret))).toBe(false);
    }
  });
});
