import { randomBytes } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { ErrorCodes, OAuthKeeperError, type OAuthKeeperErrorOptions, type ErrorCode } from '../../../src/errors';
import { RefreshCoordinator, type RefreshEvents, type RefreshOptions } from '../../../src/lib/refresh';
import { TokenClient } from '../../../src/lib/token-client';
import type { TokenSet } from '../../../src/lib/token-set';
import { defineProvider } from '../../../src/provider/define';
import type { Grant } from '../../../src/provider/types';
import { MemoryBackend } from '../../../src/store/memory';
import { TokenStore } from '../../../src/store/token-store';
import { until } from '../../helpers/until';

// ---------------------------------------------------------------------------
// fixtures
// ---------------------------------------------------------------------------

const PROVIDER = 'acme';
const OWNER = 'owner-1';
const MINUTE = 60_000;

/** The real MemoryBackend, counting reads and lock attempts so a test can wait on them. */
class ObservedBackend extends MemoryBackend {
  reads = 0;
  readonly lockAttempts: Array<{ owner: string; acquired: boolean }> = [];

  override async read(key: string) {
    this.reads += 1;
    return super.read(key);
  }

  override async acquireLock(key: string, owner: string, leaseMs: number): Promise<boolean> {
    const acquired = await super.acquireLock(key, owner, leaseMs);
    this.lockAttempts.push({ owner, acquired });
    return acquired;
  }
}

function tokenSet(accessToken: string, expiresInMs: number | null, extra: Partial<TokenSet> = {}): TokenSet {
  const now = Date.now();
  return {
    accessToken,
    tokenType: 'Bearer',
    expiresAt: expiresInMs === null ? null : now + expiresInMs,
    refreshToken: 'rt-1',
    extras: {},
    obtainedAt: now,
    ...extra,
  };
}

/** The set without a refresh token (a refresh answer that omits it, or a grant that never had one). */
function withoutRefreshToken(set: TokenSet): TokenSet {
  const { refreshToken: _omitted, ...rest } = set;
  return rest;
}

function failure(code: ErrorCode, options: OAuthKeeperErrorOptions = {}): OAuthKeeperError {
  return new OAuthKeeperError(code, `scripted ${code}`, { provider: PROVIDER, ...options });
}

const transientFailure = (options: OAuthKeeperErrorOptions = {}) =>
  failure(ErrorCodes.TOKEN_ENDPOINT_FAILED, { transient: true, status: 502, ...options });

/** One scripted answer of the fake token endpoint: a token set, an error to throw, or a pending promise. */
type Step = TokenSet | OAuthKeeperError | (() => Promise<TokenSet>);

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

type EventLog = Array<{ name: keyof RefreshEvents; payload: unknown }>;

function setup(options: RefreshOptions = {}) {
  const backend = new ObservedBackend();
  const store = new TokenStore({ backend, encryptionKeys: [randomBytes(32)] });
  const script: Step[] = [];
  const grants: Grant[] = [];
  const provider = defineProvider({
    name: PROVIDER,
    authorizationURL: 'https://id.acme.example/authorize',
    tokenURL: 'https://id.acme.example/token',
    hooks: {
      requestToken: async (_options, grant) => {
        grants.push(grant);
        const step = script.shift();
        if (step === undefined) {
          // Not transient: an unscripted call must not be retried into more unscripted calls.
          throw failure(ErrorCodes.CONFIGURATION_INVALID, { details: { unscripted: true } });
        }
        if (step instanceof OAuthKeeperError) throw step;
        if (typeof step === 'function') return step();
        return step;
      },
    },
  });
  const client = new TokenClient(PROVIDER, provider, { clientID: 'client', clientSecret: 'secret', callbackURL: '/cb' });
  const coordinator = new RefreshCoordinator(store, { retryDelayMs: 1, ...options });
  const events: EventLog = [];
  for (const name of ['refresh:start', 'refresh:success', 'refresh:failure', 'refresh:retry', 'lock:wait'] as const) {
    (coordinator.events as EventEmitter).on(name, (payload: unknown) => events.push({ name, payload }));
  }
  const named = <K extends keyof RefreshEvents>(name: K) =>
    events.filter((e) => e.name === name).map((e) => e.payload as RefreshEvents[K][0]);
  const put = async (set: TokenSet) => {
    const generation = await store.put(OWNER, PROVIDER, set);
    if (generation === null) throw new Error('unconditional put failed');
    return generation;
  };
  const stored = async () => (await store.get(OWNER, PROVIDER))?.tokenSet ?? null;
  const lockKey = store.lockKey(OWNER, PROVIDER);
  return { backend, store, script, grants, client, coordinator, events, named, put, stored, lockKey };
}

/** Pending token requests a test left open; settled after each test so no refresh (and its lease timer) outlives it. */
const hanging: Array<Deferred<TokenSet>> = [];
afterEach(async () => {
  for (const pending of hanging.splice(0)) pending.resolve(tokenSet('at-cleanup', MINUTE));
  // Let those refreshes write back and release their locks (and lease timers) before the next test.
  await new Promise((resolve) => setImmediate(resolve));
});
function hang(): Deferred<TokenSet> {
  const pending = deferred<TokenSet>();
  hanging.push(pending);
  return pending;
}

// ---------------------------------------------------------------------------
// when to refresh
// ---------------------------------------------------------------------------

describe('RefreshCoordinator: when to refresh', () => {
  it('returns null when nothing is stored, and never calls the token endpoint', async () => {
    const t = setup();
    expect(await t.coordinator.getFresh(OWNER, t.client)).toBeNull();
    expect(t.grants).toHaveLength(0);
  });

  it('does not refresh a token that is not due (outside the skew, or never expiring)', async () => {
    const t = setup({ skewSeconds: 60 });
    const current = tokenSet('at-1', 10 * MINUTE);
    await t.put(current);
    expect(await t.coordinator.getFresh(OWNER, t.client)).toEqual(current);

    const forever = tokenSet('at-forever', null);
    await t.put(forever);
    expect(await t.coordinator.getFresh(OWNER, t.client)).toEqual(forever);

    expect(t.grants).toHaveLength(0);
    expect(t.events).toEqual([]);
    expect(t.coordinator.needsRefresh(current)).toBe(false);
    expect(t.coordinator.needsRefresh(forever)).toBe(false);
  });

  it('refreshes a token inside the skew, keeps the refresh token the answer omitted, and writes it back', async () => {
    const t = setup({ skewSeconds: 60 });
    await t.put(tokenSet('at-1', 30_000, { scope: 'read' }));
    t.script.push(withoutRefreshToken(tokenSet('at-2', 10 * MINUTE)));

    const fresh = await t.coordinator.getFresh(OWNER, t.client);

    expect(fresh).toMatchObject({ accessToken: 'at-2', refreshToken: 'rt-1', scope: 'read' });
    expect(t.grants).toEqual([expect.objectContaining({ grantType: 'refresh_token', refreshToken: 'rt-1' })]);
    expect(await t.stored()).toEqual(fresh);
    expect(t.named('refresh:start')).toEqual([{ provider: PROVIDER, reason: 'expiring' }]);
    expect(t.named('refresh:success')).toEqual([expect.objectContaining({ provider: PROVIDER, retries: 0 })]);
    // The lock was released: someone else can take it at once.
    expect(await t.store.backend.acquireLock(t.lockKey, 'next', 1000)).toBe(true);
  });

  it('refreshes an expired token', async () => {
    const t = setup({ skewSeconds: 0 });
    await t.put(tokenSet('at-1', -1000));
    t.script.push(tokenSet('at-2', 10 * MINUTE, { refreshToken: 'rt-2' }));
    expect(await t.coordinator.getFresh(OWNER, t.client)).toMatchObject({ accessToken: 'at-2', refreshToken: 'rt-2' });
    expect(t.grants).toHaveLength(1);
  });

  it('with a rejected token: refreshes it even when not due, and leaves an already replaced one alone', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 10 * MINUTE));
    t.script.push(tokenSet('at-2', 10 * MINUTE));

    expect(await t.coordinator.getFresh(OWNER, t.client, 'at-1')).toMatchObject({ accessToken: 'at-2' });
    expect(t.named('refresh:start')).toEqual([{ provider: PROVIDER, reason: 'rejected' }]);

    // at-1 is no longer stored: someone already replaced it, nothing to do.
    expect(await t.coordinator.getFresh(OWNER, t.client, 'at-1')).toMatchObject({ accessToken: 'at-2' });
    expect(t.grants).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------
// single flight, the lock, compare-and-set
// ---------------------------------------------------------------------------

describe('RefreshCoordinator: one refresh at a time', () => {
  it('single-flight: many concurrent callers share one token request', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 1000));
    const pending = hang();
    t.script.push(() => pending.promise);

    const callers = Array.from({ length: 12 }, () => t.coordinator.getFresh(OWNER, t.client));
    await until(() => t.grants.length === 1, 'the token request');
    pending.resolve(tokenSet('at-2', 10 * MINUTE));
    const results = await Promise.all(callers);

    expect(t.grants).toHaveLength(1);
    expect(results.map((r) => r?.accessToken)).toEqual(Array(12).fill('at-2'));
    expect(t.named('refresh:start')).toHaveLength(1);
    expect(t.named('refresh:success')).toHaveLength(1);
    // Single flight is in-process: only one caller even tried the cross-instance lock.
    expect(t.backend.lockAttempts).toHaveLength(1);
    expect(t.named('lock:wait')).toHaveLength(0);
  });

  it('after a flight ends, the next due token starts a new one', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 1000));
    t.script.push(tokenSet('at-2', 1000), tokenSet('at-3', 10 * MINUTE));
    expect(await t.coordinator.getFresh(OWNER, t.client)).toMatchObject({ accessToken: 'at-2' });
    // at-2 is itself inside the skew: a second refresh, not the remembered first flight.
    expect(await t.coordinator.getFresh(OWNER, t.client)).toMatchObject({ accessToken: 'at-3' });
    expect(t.grants).toHaveLength(2);
  });

  it('lock held by another owner: the waiter returns the set that owner wrote, without refreshing', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 1000));
    expect(await t.store.backend.acquireLock(t.lockKey, 'someone-else', 10 * MINUTE)).toBe(true);

    const waiting = t.coordinator.getFresh(OWNER, t.client);
    await until(() => t.backend.lockAttempts.some((a) => a.owner !== 'someone-else' && !a.acquired), 'the refused lock attempt');
    // The other owner's refresh lands.
    await t.put(tokenSet('at-elsewhere', 10 * MINUTE, { refreshToken: 'rt-elsewhere' }));

    expect(await waiting).toMatchObject({ accessToken: 'at-elsewhere', refreshToken: 'rt-elsewhere' });
    expect(t.grants).toHaveLength(0);
    expect(t.named('lock:wait')).toEqual([expect.objectContaining({ provider: PROVIDER, outcome: 'refreshed-elsewhere' })]);
    expect(t.named('refresh:start')).toHaveLength(0);
    // The other owner's lock is untouched.
    expect(await t.store.backend.releaseLock(t.lockKey, 'someone-else')).toBe(true);
  });

  it('lock released by its owner without a new set: the waiter takes the lock and refreshes', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 1000));
    await t.store.backend.acquireLock(t.lockKey, 'someone-else', 10 * MINUTE);
    t.script.push(tokenSet('at-2', 10 * MINUTE));

    const waiting = t.coordinator.getFresh(OWNER, t.client);
    await until(() => t.backend.lockAttempts.some((a) => a.owner !== 'someone-else' && !a.acquired), 'the refused lock attempt');
    expect(await t.store.backend.releaseLock(t.lockKey, 'someone-else')).toBe(true);

    expect(await waiting).toMatchObject({ accessToken: 'at-2' });
    expect(t.grants).toHaveLength(1);
    expect(t.named('lock:wait')).toEqual([expect.objectContaining({ outcome: 'acquired' })]);
  });

  it('the set is deleted while waiting for the lock (logout elsewhere): null, no refresh', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 1000));
    await t.store.backend.acquireLock(t.lockKey, 'someone-else', 10 * MINUTE);
    const waiting = t.coordinator.getFresh(OWNER, t.client);
    await until(() => t.backend.lockAttempts.some((a) => a.owner !== 'someone-else'), 'the refused lock attempt');
    await t.store.delete(OWNER, [PROVIDER]);
    expect(await waiting).toBeNull();
    expect(t.grants).toHaveLength(0);
  });

  it('lock wait timeout: a still-valid token is returned as it is', async () => {
    const t = setup({ waitTimeoutMs: 40, skewSeconds: 60 });
    const current = tokenSet('at-1', 30_000);
    await t.put(current);
    await t.store.backend.acquireLock(t.lockKey, 'someone-else', 10 * MINUTE);

    expect(await t.coordinator.getFresh(OWNER, t.client)).toEqual(current);
    expect(t.grants).toHaveLength(0);
    expect(t.named('lock:wait')).toEqual([expect.objectContaining({ provider: PROVIDER, outcome: 'timeout' })]);
  });

  it('lock wait timeout: an expired token gives REFRESH_UNAVAILABLE with the configured Retry-After', async () => {
    const t = setup({ waitTimeoutMs: 40, retryAfterSeconds: 7 });
    await t.put(tokenSet('at-1', -1000));
    await t.store.backend.acquireLock(t.lockKey, 'someone-else', 10 * MINUTE);

    await expect(t.coordinator.getFresh(OWNER, t.client)).rejects.toMatchObject({
      code: ErrorCodes.REFRESH_UNAVAILABLE,
      status: 503,
      transient: true,
      retryAfter: 7,
      provider: PROVIDER,
    });
    expect(t.grants).toHaveLength(0);
    expect(t.named('lock:wait')).toEqual([expect.objectContaining({ outcome: 'timeout' })]);
    // Nothing was lost: the set is still stored.
    expect(await t.stored()).toMatchObject({ accessToken: 'at-1' });
  });

  it('lost compare-and-set: a newer write that lands during the refresh wins', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 1000));
    const pending = hang();
    t.script.push(() => pending.promise);

    const refreshing = t.coordinator.getFresh(OWNER, t.client);
    await until(() => t.grants.length === 1, 'the token request');
    // A login (or another instance) writes meanwhile.
    await t.put(tokenSet('at-newer', 10 * MINUTE, { refreshToken: 'rt-newer' }));
    pending.resolve(tokenSet('at-refreshed', 10 * MINUTE, { refreshToken: 'rt-refreshed' }));

    expect(await refreshing).toMatchObject({ accessToken: 'at-newer', refreshToken: 'rt-newer' });
    expect(await t.stored()).toMatchObject({ accessToken: 'at-newer', refreshToken: 'rt-newer' });
    expect(t.named('refresh:success')).toHaveLength(0);
  });

  it('lost compare-and-set to a logout: null, and nothing is written back', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 1000));
    const pending = hang();
    t.script.push(() => pending.promise);
    const refreshing = t.coordinator.getFresh(OWNER, t.client);
    await until(() => t.grants.length === 1, 'the token request');
    await t.store.delete(OWNER, [PROVIDER]);
    pending.resolve(tokenSet('at-refreshed', 10 * MINUTE));
    expect(await refreshing).toBeNull();
    expect(await t.stored()).toBeNull();
  });
});

// ---------------------------------------------------------------------------
// failures
// ---------------------------------------------------------------------------

describe('RefreshCoordinator: transient failures', () => {
  it('retries up to maxRetries with doubling backoff, announcing each retry', async () => {
    const t = setup({ maxRetries: 2, retryDelayMs: 3 });
    await t.put(tokenSet('at-1', -1000));
    t.script.push(transientFailure(), transientFailure(), tokenSet('at-2', 10 * MINUTE));

    expect(await t.coordinator.getFresh(OWNER, t.client)).toMatchObject({ accessToken: 'at-2' });
    expect(t.grants).toHaveLength(3);
    expect(t.named('refresh:retry')).toEqual([
      { provider: PROVIDER, attempt: 1, delayMs: 3 },
      { provider: PROVIDER, attempt: 2, delayMs: 6 },
    ]);
    expect(t.named('refresh:success')).toEqual([expect.objectContaining({ retries: 2 })]);
    expect(t.named('refresh:failure')).toHaveLength(0);
  });

  it('gives up after maxRetries: REFRESH_UNAVAILABLE for an expired token, the set kept', async () => {
    const t = setup({ maxRetries: 2, retryAfterSeconds: 4 });
    await t.put(tokenSet('at-1', -1000));
    t.script.push(transientFailure(), transientFailure(), transientFailure(), tokenSet('never-reached', MINUTE));

    const error = await t.coordinator.getFresh(OWNER, t.client).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthKeeperError);
    expect(error).toMatchObject({ code: ErrorCodes.REFRESH_UNAVAILABLE, status: 503, retryAfter: 4, transient: true });
    expect((error as Error).cause).toMatchObject({ code: ErrorCodes.TOKEN_ENDPOINT_FAILED, transient: true });
    expect(t.grants).toHaveLength(3);
    expect(t.named('refresh:retry')).toHaveLength(2);
    expect(t.named('refresh:failure')).toEqual([
      { provider: PROVIDER, code: ErrorCodes.TOKEN_ENDPOINT_FAILED, transient: true, retries: 2, durationMs: expect.any(Number) },
    ]);
    expect(await t.stored()).toMatchObject({ accessToken: 'at-1' });
  });

  it('gives up after maxRetries: a still-valid token goes on being used', async () => {
    const t = setup({ maxRetries: 1, skewSeconds: 60 });
    const current = tokenSet('at-1', 30_000);
    await t.put(current);
    t.script.push(transientFailure(), transientFailure());
    expect(await t.coordinator.getFresh(OWNER, t.client)).toEqual(current);
    expect(t.grants).toHaveLength(2);
    expect(await t.stored()).toEqual(current);
  });

  it('an unexpected throw from the hook counts as transient (wrapped by the token client) and is retried', async () => {
    const t = setup({ maxRetries: 1 });
    await t.put(tokenSet('at-1', -1000));
    t.script.push(() => Promise.reject(new Error('socket hang up')), tokenSet('at-2', MINUTE * 10));
    expect(await t.coordinator.getFresh(OWNER, t.client)).toMatchObject({ accessToken: 'at-2' });
    expect(t.named('refresh:retry')).toHaveLength(1);
  });

  it("honours a provider's retryAfter up to maxRetryAfterMs instead of the backoff", async () => {
    const t = setup({ maxRetries: 2, retryDelayMs: 1000, maxRetryAfterMs: 2000 });
    await t.put(tokenSet('at-1', -1000));
    t.script.push(transientFailure({ retryAfter: 0.02 }), tokenSet('at-2', 10 * MINUTE));

    expect(await t.coordinator.getFresh(OWNER, t.client)).toMatchObject({ accessToken: 'at-2' });
    expect(t.named('refresh:retry')).toEqual([{ provider: PROVIDER, attempt: 1, delayMs: 20 }]);
    expect(t.grants).toHaveLength(2);
  });

  it("a retryAfter longer than maxRetryAfterMs ends the refresh at once, passing the provider's retryAfter on", async () => {
    const t = setup({ maxRetries: 5, maxRetryAfterMs: 2000, retryAfterSeconds: 5 });
    await t.put(tokenSet('at-1', -1000));
    t.script.push(transientFailure({ retryAfter: 30 }), tokenSet('never-reached', MINUTE));

    await expect(t.coordinator.getFresh(OWNER, t.client)).rejects.toMatchObject({
      code: ErrorCodes.REFRESH_UNAVAILABLE,
      retryAfter: 30,
    });
    expect(t.grants).toHaveLength(1);
    expect(t.named('refresh:retry')).toHaveLength(0);
    expect(t.named('refresh:failure')).toEqual([expect.objectContaining({ transient: true, retries: 0 })]);
    expect(await t.stored()).toMatchObject({ accessToken: 'at-1' });
  });
});

describe('RefreshCoordinator: one cycle per request', () => {
  it("a second call in the same request after a failed cycle answers with the provider's Retry-After, without another refresh", async () => {
    const t = setup({ maxRetries: 0, maxRetryAfterMs: 2000, retryAfterSeconds: 5 });
    await t.put(tokenSet('at-1', -1000));
    t.script.push(transientFailure({ retryAfter: 30 }), tokenSet('never-reached', MINUTE));
    const request = {};

    const first = t.coordinator.forRequest(request, OWNER, t.client);
    await expect(first).rejects.toMatchObject({ code: ErrorCodes.REFRESH_UNAVAILABLE, retryAfter: 30 });
    // The proxy or req.oauthFetch of the same request asks again: no second cycle, the same advice.
    const second = t.coordinator.forRequest(request, OWNER, t.client);
    await expect(second).rejects.toMatchObject({ code: ErrorCodes.REFRESH_UNAVAILABLE, retryAfter: 30 });
    expect(t.grants).toHaveLength(1);
    // A new request gets a cycle of its own.
    await expect(t.coordinator.forRequest({}, OWNER, t.client)).resolves.toMatchObject({ accessToken: 'never-reached' });
    expect(t.grants).toHaveLength(2);
  });

  it('a token the provider refused and that could not be replaced says so, not that it expired', async () => {
    const t = setup({ maxRetries: 0 });
    await t.put(tokenSet('at-1', null));
    t.script.push(transientFailure());
    const error = await t.coordinator.getFresh(OWNER, t.client, 'at-1').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.REFRESH_UNAVAILABLE, retryAfter: 5 });
    expect((error as Error).message).toMatch(/refused by the provider and could not be replaced/);
    expect(await t.stored()).toMatchObject({ accessToken: 'at-1' });
  });
});

describe('RefreshCoordinator: permanent failures', () => {
  it('grantInvalid: the set is deleted and REAUTHORIZATION_REQUIRED names the OAuth error', async () => {
    const t = setup({ maxRetries: 3 });
    await t.put(tokenSet('at-1', -1000));
    t.script.push(failure(ErrorCodes.TOKEN_ENDPOINT_FAILED, { grantInvalid: true, oauthError: 'invalid_grant', status: 502 }));

    const error = await t.coordinator.getFresh(OWNER, t.client).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: ErrorCodes.REAUTHORIZATION_REQUIRED, status: 401, oauthError: 'invalid_grant', provider: PROVIDER });
    expect((error as Error).cause).toMatchObject({ code: ErrorCodes.TOKEN_ENDPOINT_FAILED, grantInvalid: true });
    expect(t.grants).toHaveLength(1);
    expect(await t.stored()).toBeNull();
    expect(t.named('refresh:failure')).toEqual([expect.objectContaining({ code: ErrorCodes.TOKEN_ENDPOINT_FAILED, transient: false })]);
  });

  it('grantInvalid is never retried, even when also marked transient, and deletes a still-valid set too', async () => {
    const t = setup({ maxRetries: 3, skewSeconds: 60 });
    await t.put(tokenSet('at-1', 30_000));
    t.script.push(transientFailure({ grantInvalid: true, oauthError: 'invalid_grant' }), tokenSet('never-reached', MINUTE));
    await expect(t.coordinator.getFresh(OWNER, t.client)).rejects.toMatchObject({ code: ErrorCodes.REAUTHORIZATION_REQUIRED });
    expect(t.grants).toHaveLength(1);
    expect(t.named('refresh:retry')).toHaveLength(0);
    expect(await t.stored()).toBeNull();
  });

  it('no refresh token: REAUTHORIZATION_REQUIRED without calling the token endpoint, the set deleted', async () => {
    const t = setup();
    await t.put(withoutRefreshToken(tokenSet('at-1', -1000)));
    await expect(t.coordinator.getFresh(OWNER, t.client)).rejects.toMatchObject({ code: ErrorCodes.REAUTHORIZATION_REQUIRED, provider: PROVIDER });
    expect(t.grants).toHaveLength(0);
    expect(await t.stored()).toBeNull();
  });

  it('TOKEN_RESPONSE_MALFORMED: the set is kept and a still-valid token is returned, without retrying', async () => {
    const t = setup({ maxRetries: 3, skewSeconds: 60 });
    const current = tokenSet('at-1', 30_000);
    await t.put(current);
    t.script.push(failure(ErrorCodes.TOKEN_RESPONSE_MALFORMED), tokenSet('never-reached', MINUTE));

    expect(await t.coordinator.getFresh(OWNER, t.client)).toEqual(current);
    expect(t.grants).toHaveLength(1);
    expect(await t.stored()).toEqual(current);
    expect(t.named('refresh:failure')).toEqual([
      { provider: PROVIDER, code: ErrorCodes.TOKEN_RESPONSE_MALFORMED, transient: false, retries: 0, durationMs: expect.any(Number) },
    ]);
  });

  it('TOKEN_RESPONSE_MALFORMED with an expired token: that error is thrown, the set kept', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', -1000));
    t.script.push(failure(ErrorCodes.TOKEN_RESPONSE_MALFORMED));
    await expect(t.coordinator.getFresh(OWNER, t.client)).rejects.toMatchObject({ code: ErrorCodes.TOKEN_RESPONSE_MALFORMED });
    expect(await t.stored()).toMatchObject({ accessToken: 'at-1' });
  });

  it('invalid_client (our configuration): the set is kept; expired → that error; valid → the token', async () => {
    const t = setup({ skewSeconds: 60 });
    const invalidClient = () => failure(ErrorCodes.TOKEN_ENDPOINT_FAILED, { oauthError: 'invalid_client', status: 502 });

    await t.put(tokenSet('at-expired', -1000));
    t.script.push(invalidClient());
    await expect(t.coordinator.getFresh(OWNER, t.client)).rejects.toMatchObject({
      code: ErrorCodes.TOKEN_ENDPOINT_FAILED,
      oauthError: 'invalid_client',
      grantInvalid: false,
    });
    expect(await t.stored()).toMatchObject({ accessToken: 'at-expired' });

    const valid = tokenSet('at-valid', 30_000);
    await t.put(valid);
    t.script.push(invalidClient());
    expect(await t.coordinator.getFresh(OWNER, t.client)).toEqual(valid);
    expect(await t.stored()).toEqual(valid);
    expect(t.grants).toHaveLength(2);
  });

  it('a non-transient failure of a rejected token is thrown even though the token has not expired', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 10 * MINUTE));
    t.script.push(failure(ErrorCodes.TOKEN_ENDPOINT_FAILED, { oauthError: 'invalid_client' }));
    await expect(t.coordinator.getFresh(OWNER, t.client, 'at-1')).rejects.toMatchObject({ oauthError: 'invalid_client' });
    expect(await t.stored()).toMatchObject({ accessToken: 'at-1' });
  });

  it('a transient failure of a rejected token is REFRESH_UNAVAILABLE, not the rejected token', async () => {
    const t = setup({ maxRetries: 0 });
    await t.put(tokenSet('at-1', 10 * MINUTE));
    t.script.push(transientFailure());
    await expect(t.coordinator.getFresh(OWNER, t.client, 'at-1')).rejects.toMatchObject({ code: ErrorCodes.REFRESH_UNAVAILABLE });
  });

  it('a failure after another writer rotated the set meanwhile returns that newer set', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', -1000));
    const pending = hang();
    t.script.push(() => pending.promise);
    const refreshing = t.coordinator.getFresh(OWNER, t.client);
    await until(() => t.grants.length === 1, 'the token request');
    await t.put(tokenSet('at-rotated', 10 * MINUTE));
    pending.reject(failure(ErrorCodes.TOKEN_ENDPOINT_FAILED, { grantInvalid: true, oauthError: 'invalid_grant' }));
    // The refresh token we used was rotated by someone else: its refusal must not delete their set.
    expect(await refreshing).toMatchObject({ accessToken: 'at-rotated' });
    expect(await t.stored()).toMatchObject({ accessToken: 'at-rotated' });
  });

  it('a failure after a logout meanwhile hands back nothing, not the logged-out token', async () => {
    for (const [label, error, expiresInMs] of [
      ['non-transient, still valid', failure(ErrorCodes.TOKEN_RESPONSE_MALFORMED), 30_000],
      ['transient, expired', failure(ErrorCodes.TOKEN_ENDPOINT_FAILED, { transient: true }), -1000],
    ] as const) {
      const t = setup({ maxRetries: 0 });
      await t.put(tokenSet(`at-${label}`, expiresInMs));
      const pending = hang();
      t.script.push(() => pending.promise);
      const refreshing = t.coordinator.getFresh(OWNER, t.client);
      await until(() => t.grants.length === 1, 'the token request');
      await t.store.delete(OWNER, [PROVIDER]);
      pending.reject(error);
      expect(await refreshing).toBeNull();
    }
  });
});

describe('RefreshCoordinator: backoff', () => {
  it('our own backoff is not cut by maxRetryAfterMs (that bounds a provider Retry-After only)', async () => {
    const t = setup({ maxRetries: 1, retryDelayMs: 30, maxRetryAfterMs: 10, requestBudgetMs: 5000 });
    await t.put(tokenSet('at-1', -1000));
    t.script.push(transientFailure(), tokenSet('at-2', MINUTE));
    expect(await t.coordinator.getFresh(OWNER, t.client)).toMatchObject({ accessToken: 'at-2' });
    expect(t.grants).toHaveLength(2);
    expect(t.named('refresh:retry')).toEqual([{ provider: PROVIDER, attempt: 1, delayMs: 30 }]);
  });
});

// ---------------------------------------------------------------------------
// one request's budget
// ---------------------------------------------------------------------------

describe('RefreshCoordinator: per-request budget', () => {
  it('forRequest shares one read per request object; another request reads again', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 10 * MINUTE));
    const request = {};
    const readsBefore = t.backend.reads;

    const first = t.coordinator.forRequest(request, OWNER, t.client);
    const second = t.coordinator.forRequest(request, OWNER, t.client);
    expect(second).toBe(first);
    expect(await first).toMatchObject({ accessToken: 'at-1' });
    expect(await t.coordinator.forRequest(request, OWNER, t.client)).toMatchObject({ accessToken: 'at-1' });
    expect(t.backend.reads - readsBefore).toBe(1);

    expect(await t.coordinator.forRequest({}, OWNER, t.client)).toMatchObject({ accessToken: 'at-1' });
    expect(t.backend.reads - readsBefore).toBe(2);
  });

  it('keeps owners apart within one request', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 10 * MINUTE));
    await t.store.put('owner-2', PROVIDER, tokenSet('at-other', 10 * MINUTE));
    const request = {};
    expect(await t.coordinator.forRequest(request, OWNER, t.client)).toMatchObject({ accessToken: 'at-1' });
    expect(await t.coordinator.forRequest(request, 'owner-2', t.client)).toMatchObject({ accessToken: 'at-other' });
  });

  it('at most one refresh cycle per request: after a failed cycle the request does not call requestToken again', async () => {
    const t = setup({ maxRetries: 0 });
    await t.put(tokenSet('at-1', -1000));
    t.script.push(transientFailure(), transientFailure());
    const request = {};

    await expect(t.coordinator.forRequest(request, OWNER, t.client)).rejects.toMatchObject({ code: ErrorCodes.REFRESH_UNAVAILABLE });
    expect(t.grants).toHaveLength(1);
    // A failure is not remembered: the request reads again, but its cycle is spent.
    await expect(t.coordinator.forRequest(request, OWNER, t.client)).rejects.toMatchObject({ code: ErrorCodes.REFRESH_UNAVAILABLE });
    expect(t.grants).toHaveLength(1);

    // A new request gets a cycle of its own.
    await expect(t.coordinator.forRequest({}, OWNER, t.client)).rejects.toMatchObject({ code: ErrorCodes.REFRESH_UNAVAILABLE });
    expect(t.grants).toHaveLength(2);
  });

  it('after a refresh in the request, the refreshed set is remembered for its later callers', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 1000));
    t.script.push(tokenSet('at-2', 10 * MINUTE));
    const request = {};
    expect(await t.coordinator.forRequest(request, OWNER, t.client)).toMatchObject({ accessToken: 'at-2' });
    const readsAfter = t.backend.reads;
    expect(await t.coordinator.forRequest(request, OWNER, t.client)).toMatchObject({ accessToken: 'at-2' });
    expect(t.backend.reads).toBe(readsAfter);
    expect(t.grants).toHaveLength(1);
  });

  it('replaceRejected with an unspent budget refreshes once; later forRequest calls see the replacement', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 10 * MINUTE));
    t.script.push(tokenSet('at-2', 10 * MINUTE));
    const request = {};
    expect(await t.coordinator.forRequest(request, OWNER, t.client)).toMatchObject({ accessToken: 'at-1' });
    expect(await t.coordinator.replaceRejected(request, OWNER, t.client, 'at-1')).toMatchObject({ accessToken: 'at-2' });
    expect(await t.coordinator.forRequest(request, OWNER, t.client)).toMatchObject({ accessToken: 'at-2' });
    expect(t.named('refresh:start')).toEqual([{ provider: PROVIDER, reason: 'rejected' }]);
    expect(t.grants).toHaveLength(1);
  });

  it('replaceRejected after the budget was spent on a refresh returns the same token, without another request', async () => {
    const t = setup();
    await t.put(tokenSet('at-1', 1000));
    t.script.push(tokenSet('at-2', 10 * MINUTE), tokenSet('never-reached', 10 * MINUTE));
    const request = {};
    expect(await t.coordinator.forRequest(request, OWNER, t.client)).toMatchObject({ accessToken: 'at-2' });
    // The upstream refuses the token just obtained: the request has had its cycle.
    expect(await t.coordinator.replaceRejected(request, OWNER, t.client, 'at-2')).toMatchObject({ accessToken: 'at-2' });
    expect(t.grants).toHaveLength(1);
    expect(await t.stored()).toMatchObject({ accessToken: 'at-2' });
  });

  it('replaceRejected after a failed replacement returns the same rejected token the second time', async () => {
    const t = setup({ maxRetries: 0 });
    await t.put(tokenSet('at-1', 10 * MINUTE));
    t.script.push(transientFailure(), tokenSet('never-reached', 10 * MINUTE));
    const request = {};
    await expect(t.coordinator.replaceRejected(request, OWNER, t.client, 'at-1')).rejects.toMatchObject({ code: ErrorCodes.REFRESH_UNAVAILABLE });
    expect(await t.coordinator.replaceRejected(request, OWNER, t.client, 'at-1')).toMatchObject({ accessToken: 'at-1' });
    expect(t.grants).toHaveLength(1);
  });

  it('requestBudgetMs exceeded: a still-valid token is returned while the refresh goes on for whoever comes next', async () => {
    const t = setup({ requestBudgetMs: 100, skewSeconds: 60 });
    const current = tokenSet('at-1', 30_000);
    await t.put(current);
    const pending = hang();
    t.script.push(() => pending.promise);

    expect(await t.coordinator.forRequest({}, OWNER, t.client)).toEqual(current);
    expect(t.grants).toHaveLength(1);

    // The refresh was not abandoned: when the provider finally answers, its set is written.
    pending.resolve(tokenSet('at-late', 10 * MINUTE));
    await until(async () => (await t.stored())?.accessToken === 'at-late', 'the late refresh to be written');
    expect(t.named('refresh:success')).toHaveLength(1);
  });

  it('requestBudgetMs exceeded: an expired token gives REFRESH_UNAVAILABLE once the budget is over', async () => {
    const t = setup({ requestBudgetMs: 100, retryAfterSeconds: 3 });
    await t.put(tokenSet('at-1', -1000));
    t.script.push(() => hang().promise);

    await expect(t.coordinator.forRequest({}, OWNER, t.client)).rejects.toMatchObject({
      code: ErrorCodes.REFRESH_UNAVAILABLE,
      status: 503,
      retryAfter: 3,
    });
    expect(t.grants).toHaveLength(1);
    expect(await t.stored()).toMatchObject({ accessToken: 'at-1' });
  });

  it('a second request joins the refresh still in flight rather than starting another one', async () => {
    const t = setup({ requestBudgetMs: 100 });
    await t.put(tokenSet('at-1', -1000));
    const pending = hang();
    t.script.push(() => pending.promise);

    await expect(t.coordinator.forRequest({}, OWNER, t.client)).rejects.toMatchObject({ code: ErrorCodes.REFRESH_UNAVAILABLE });
    const next = t.coordinator.forRequest({}, OWNER, t.client);
    pending.resolve(tokenSet('at-2', 10 * MINUTE));
    expect(await next).toMatchObject({ accessToken: 'at-2' });
    expect(t.grants).toHaveLength(1);
  });

  it('budget() is deadline = now + requestBudgetMs, unspent', () => {
    const t = setup({ requestBudgetMs: 1234 });
    expect(t.coordinator.budget(1_000_000)).toEqual({ deadline: 1_001_234, spent: false });
    expect(t.coordinator.requestBudgetMs).toBe(1234);
  });
});
