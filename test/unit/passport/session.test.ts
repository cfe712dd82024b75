import express, { type Request } from 'express';
import request from 'supertest';
import { ErrorCodes } from '../../../src/errors';
import {
  addTransaction,
  hasCookie,
  ownerOf,
  publicHost,
  repeatedParameter,
  takeTransaction,
  type KeeperSessionData,
  type LoginTransaction,
} from '../../../src/passport/session';

// ---------------------------------------------------------------------------
// minimal fake requests: only what the functions under test read
// ---------------------------------------------------------------------------

interface FakeSession {
  oauthKeeper?: KeeperSessionData;
  save(callback: (err?: unknown) => void): void;
}

function fakeRequest(init: { session?: FakeSession | null; headers?: Record<string, string> } = {}): Request {
  const session = init.session === null ? undefined : (init.session ?? { save: (cb: (err?: unknown) => void) => cb() });
  return { session, headers: init.headers ?? {} } as unknown as Request;
}

function sessionOf(req: Request): FakeSession {
  return req.session as unknown as FakeSession;
}

function tx(createdAt: number, extra: Partial<LoginTransaction> = {}): LoginTransaction {
  return { provider: 'acme', redirectUri: 'https://app.example/cb', returnTo: '/', createdAt, ...extra };
}

const LIMITS = { ttlMs: 60_000, max: 3 };

// ---------------------------------------------------------------------------
// login transactions
// ---------------------------------------------------------------------------

describe('addTransaction / takeTransaction', () => {
  it('stores a transaction under its state and hands it back exactly once', () => {
    const req = fakeRequest();
    const pending = tx(Date.now(), { codeVerifier: 'verifier', nonce: 'n-1', appState: { from: 'test' } });
    addTransaction(req, 'state-1', pending, LIMITS);
    expect(sessionOf(req).oauthKeeper?.tx).toEqual({ 'state-1': pending });

    expect(takeTransaction(req, 'state-1', LIMITS)).toEqual({ found: pending });
    // Single use: a replayed callback finds nothing.
    expect(takeTransaction(req, 'state-1', LIMITS)).toEqual({ missing: true });
    expect(sessionOf(req).oauthKeeper?.tx).toEqual({});
  });

  it('keeps several pending logins apart (several tabs)', () => {
    const req = fakeRequest();
    const now = Date.now();
    addTransaction(req, 'a', tx(now, { provider: 'one' }), LIMITS);
    addTransaction(req, 'b', tx(now, { provider: 'two' }), LIMITS);
    expect(takeTransaction(req, 'b', LIMITS)).toEqual({ found: expect.objectContaining({ provider: 'two' }) });
    expect(takeTransaction(req, 'a', LIMITS)).toEqual({ found: expect.objectContaining({ provider: 'one' }) });
  });

  it('an expired transaction is reported as expired, and consumed', () => {
    const req = fakeRequest();
    addTransaction(req, 'old', tx(Date.now() - LIMITS.ttlMs - 1), { ...LIMITS, ttlMs: 10 * LIMITS.ttlMs });
    expect(takeTransaction(req, 'old', LIMITS)).toEqual({ expired: true });
    expect(takeTransaction(req, 'old', LIMITS)).toEqual({ missing: true });
  });

  it('the TTL boundary itself counts as expired', () => {
    const req = fakeRequest();
    const limits = { ttlMs: 1_000_000, max: 3 };
    addTransaction(req, 'edge', tx(Date.now() - limits.ttlMs), { ...limits, ttlMs: 2 * limits.ttlMs });
    expect(takeTransaction(req, 'edge', limits)).toEqual({ expired: true });
  });

  it('adding prunes expired transactions', () => {
    const req = fakeRequest();
    const now = Date.now();
    addTransaction(req, 'stale', tx(now - 2 * LIMITS.ttlMs), { ...LIMITS, ttlMs: 10 * LIMITS.ttlMs });
    addTransaction(req, 'fresh', tx(now), LIMITS);
    expect(Object.keys(sessionOf(req).oauthKeeper!.tx!)).toEqual(['fresh']);
  });

  it('the cap drops the oldest pending logins first', () => {
    const req = fakeRequest();
    const now = Date.now();
    // Added out of order: the cap goes by createdAt, not by insertion.
    addTransaction(req, 's2', tx(now - 2000), LIMITS);
    addTransaction(req, 's1', tx(now - 3000), LIMITS);
    addTransaction(req, 's3', tx(now - 1000), LIMITS);
    addTransaction(req, 's4', tx(now), LIMITS);
    expect(Object.keys(sessionOf(req).oauthKeeper!.tx!).sort()).toEqual(['s2', 's3', 's4']);
    addTransaction(req, 's5', tx(now), LIMITS);
    expect(Object.keys(sessionOf(req).oauthKeeper!.tx!).sort()).toEqual(['s3', 's4', 's5']);
    expect(takeTransaction(req, 's1', LIMITS)).toEqual({ missing: true });
    expect(takeTransaction(req, 's2', LIMITS)).toEqual({ missing: true });
    expect(takeTransaction(req, 's5', LIMITS)).toEqual({ found: expect.objectContaining({ createdAt: now }) });
  });

  it('max: 1 keeps only the latest login', () => {
    const req = fakeRequest();
    const limits = { ttlMs: 60_000, max: 1 };
    addTransaction(req, 'first', tx(Date.now() - 10), limits);
    addTransaction(req, 'second', tx(Date.now()), limits);
    expect(Object.keys(sessionOf(req).oauthKeeper!.tx!)).toEqual(['second']);
  });

  it('missing: no session, no oauthKeeper data, no transactions, unknown state, inherited names', () => {
    expect(takeTransaction(fakeRequest({ session: null }), 's', LIMITS)).toEqual({ missing: true });
    expect(takeTransaction(fakeRequest(), 's', LIMITS)).toEqual({ missing: true });
    const req = fakeRequest();
    sessionOf(req).oauthKeeper = { owner: 'o' };
    expect(takeTransaction(req, 's', LIMITS)).toEqual({ missing: true });
    addTransaction(req, 'known', tx(Date.now()), LIMITS);
    expect(takeTransaction(req, 'unknown', LIMITS)).toEqual({ missing: true });
    // A state that names an Object.prototype member is not a transaction.
    expect(takeTransaction(req, 'constructor', LIMITS)).toEqual({ missing: true });
    expect(takeTransaction(req, '__proto__', LIMITS)).toEqual({ missing: true });
    expect(takeTransaction(req, 'known', LIMITS)).toEqual({ found: expect.objectContaining({ provider: 'acme' }) });
  });

  it('addTransaction without express-session names the fix', () => {
    expect(() => addTransaction(fakeRequest({ session: null }), 's', tx(Date.now()), LIMITS)).toThrow(
      expect.objectContaining({ code: ErrorCodes.SESSION_NOT_AVAILABLE, message: expect.stringMatching(/needs express-session/) }),
    );
  });

  it('addTransaction keeps the owner already in the session', () => {
    const req = fakeRequest();
    sessionOf(req).oauthKeeper = { owner: 'owner-x' };
    addTransaction(req, 's', tx(Date.now()), LIMITS);
    expect(sessionOf(req).oauthKeeper).toMatchObject({ owner: 'owner-x', tx: { s: expect.any(Object) } });
  });
});

// ---------------------------------------------------------------------------
// the token owner
// ---------------------------------------------------------------------------

describe('ownerOf', () => {
  it('without create: undefined when the session has no owner, and nothing is written', () => {
    const req = fakeRequest();
    expect(ownerOf(req, false)).toBeUndefined();
    expect(sessionOf(req).oauthKeeper).toBeUndefined();
  });

  it('with create: a random owner id, stable afterwards, kept alongside pending logins', () => {
    const req = fakeRequest();
    addTransaction(req, 's', tx(Date.now()), LIMITS);
    const owner = ownerOf(req, true);
    expect(owner).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(ownerOf(req, true)).toBe(owner);
    expect(ownerOf(req, false)).toBe(owner);
    expect(sessionOf(req).oauthKeeper).toMatchObject({ owner, tx: { s: expect.any(Object) } });
  });

  it('two sessions get different owners', () => {
    expect(ownerOf(fakeRequest(), true)).not.toBe(ownerOf(fakeRequest(), true));
  });

  it('no session at all: undefined, even with create', () => {
    expect(ownerOf(fakeRequest({ session: null }), true)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------
// request inspection
// ---------------------------------------------------------------------------

describe('hasCookie', () => {
  it('finds a cookie by exact name anywhere in the header', () => {
    const req = fakeRequest({ headers: { cookie: 'theme=dark; connect.sid=s%3Aabc.def;  other=1' } });
    expect(hasCookie(req, 'connect.sid')).toBe(true);
    expect(hasCookie(req, 'theme')).toBe(true);
    expect(hasCookie(req, 'other')).toBe(true);
  });

  it('does not match a name that is only a prefix, a suffix or a value', () => {
    const req = fakeRequest({ headers: { cookie: 'connect.sid.sig=x; my-connect.sid=y; a=connect.sid' } });
    expect(hasCookie(req, 'connect.sid')).toBe(false);
  });

  it('false without a Cookie header', () => {
    expect(hasCookie(fakeRequest(), 'connect.sid')).toBe(false);
  });
});

describe('repeatedParameter', () => {
  it('names the first parameter that is not a single string', () => {
    expect(repeatedParameter({ code: 'c', state: ['a', 'b'] })).toBe('state');
    expect(repeatedParameter({ code: { nested: '1' }, state: 's' })).toBe('code');
  });

  it('undefined when every parameter is a single string, or for no object', () => {
    expect(repeatedParameter({ code: 'c', state: 's', empty: '' })).toBeUndefined();
    expect(repeatedParameter({})).toBeUndefined();
    expect(repeatedParameter(undefined)).toBeUndefined();
    expect(repeatedParameter(null)).toBeUndefined();
    expect(repeatedParameter('code=c')).toBeUndefined();
  });

  it('reads what Express parses from a repeated or nested query', async () => {
    const app = express();
    app.set('query parser', 'extended');
    app.get('/cb', (req, res) => {
      res.json({ repeated: repeatedParameter(req.query) ?? null });
    });
    expect((await request(app).get('/cb?code=c&state=a&state=b').expect(200)).body).toEqual({ repeated: 'state' });
    expect((await request(app).get('/cb?code[x]=1&state=s').expect(200)).body).toEqual({ repeated: 'code' });
    expect((await request(app).get('/cb?code=c&state=s').expect(200)).body).toEqual({ repeated: null });
  });
});

// ---------------------------------------------------------------------------
// publicHost: a real Express app, so `trust proxy fn` is Express's own
// ---------------------------------------------------------------------------

describe('publicHost', () => {
  function hostApp(trustProxy?: boolean | string | ((address: string, hop: number) => boolean)) {
    const app = express();
    if (trustProxy !== undefined) app.set('trust proxy', trustProxy);
    app.get('/host', (req, res) => {
      res.json({ host: publicHost(req) });
    });
    return app;
  }

  it('without trust proxy: the Host header, port kept; X-Forwarded-Host ignored', async () => {
    const res = await request(hostApp()).get('/host').set('host', 'app.example:8443').set('x-forwarded-host', 'evil.example').expect(200);
    expect(res.body).toEqual({ host: 'app.example:8443' });
  });

  it('trusted proxy (loopback): the first X-Forwarded-Host value', async () => {
    const app = hostApp('loopback');
    const one = await request(app).get('/host').set('host', 'internal:3000').set('x-forwarded-host', 'public.example').expect(200);
    expect(one.body).toEqual({ host: 'public.example' });
    const many = await request(app).get('/host').set('host', 'internal:3000').set('x-forwarded-host', ' public.example:444 , inner.example').expect(200);
    expect(many.body).toEqual({ host: 'public.example:444' });
  });

  it('trusted proxy but no X-Forwarded-Host: the Host header', async () => {
    const res = await request(hostApp(true)).get('/host').set('host', 'app.example').expect(200);
    expect(res.body).toEqual({ host: 'app.example' });
  });

  it('a proxy setting that does not trust the remote address: the Host header', async () => {
    const res = await request(hostApp('10.0.0.1')).get('/host').set('host', 'app.example').set('x-forwarded-host', 'evil.example').expect(200);
    expect(res.body).toEqual({ host: 'app.example' });
  });

  it('asks the trust function about the socket address of this hop', async () => {
    const asked: Array<[string, number]> = [];
    const app = hostApp((address, hop) => {
      asked.push([address, hop]);
      return false;
    });
    const res = await request(app).get('/host').set('host', 'app.example').set('x-forwarded-host', 'evil.example').expect(200);
    expect(res.body).toEqual({ host: 'app.example' });
    expect(asked).toContainEqual([expect.stringMatching(/127\.0\.0\.1|::1/), 0]);
  });

  it('a fake request without an app (no trust function): the Host header', () => {
    const headers: Record<string, string> = { host: 'app.example', 'x-forwarded-host': 'evil.example' };
    const req = { get: (name: string) => headers[name.toLowerCase()], socket: { remoteAddress: '127.0.0.1' } } as unknown as Request;
    expect(publicHost(req)).toBe('app.example');
  });

  it('a fake request with a trusting app: X-Forwarded-Host; no Host at all: an empty string', () => {
    const headers: Record<string, string> = { 'x-forwarded-host': 'public.example' };
    const trusting = { get: (setting: string) => (setting === 'trust proxy fn' ? () => true : undefined) };
    const req = { app: trusting, get: (name: string) => headers[name.toLowerCase()], socket: { remoteAddress: '10.1.1.1' } } as unknown as Request;
    expect(publicHost(req)).toBe('public.example');
    delete headers['x-forwarded-host'];
    expect(publicHost(req)).toBe('');
  });
});
