import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import request from 'supertest';
import { ErrorCodes, type OwnerOption } from '../../src/index';
import type { SandboxUser } from '../../src/sandbox/index';
import { createTestApp, login, type TestApp } from '../helpers/app';
import { approveAs } from '../helpers/browser-flow';
import { until } from '../helpers/until';

/**
 * Token sets bound to an owner the app chooses (the keeper's `owner` option) instead of
 * the session's random owner: one record per user whichever browser they use, kept when
 * a session ends, and reachable without a request through keeper.forOwner(key). Real
 * redis-server, express-session + connect-redis, the OAuth2 sandbox.
 */

const hash = (value: string) => createHash('sha256').update(value).digest('hex').slice(0, 16);
type Agent = ReturnType<typeof request.agent>;

/** The owner the test app chooses: replaceable per test; by default `user-<profile id>`. */
let chooseOwner: OwnerOption = (_req, _user, profile) => (profile.id ? `user-${profile.id}` : undefined);

async function ownerApp(extra: Parameters<typeof createTestApp>[0] = {}): Promise<TestApp> {
  return createTestApp({
    ...extra,
    keeper: { owner: (req, user, profile) => chooseOwner(req, user, profile), ...extra.keeper },
    routes: (app, keeper) => {
      app.get('/token', keeper.ensureAuthorized('example', { unauthorized: 'status' }), (req, res) => {
        res.json({ token: hash(req.oauthToken!.accessToken) });
      });
      app.get('/api-whoami', async (req, res) => {
        const answer = await req.oauthFetch!('example', '/whoami');
        res.status(answer.status).json(await answer.json());
      });
      app.post('/logout-all', keeper.logout({ disconnect: true }));
      app.get('/connections', async (req, res) => {
        res.json(await keeper.connections(req));
      });
    },
  });
}

/** The same user logging in from two browsers, one after the other. */
async function twoBrowsers(t: TestApp): Promise<[Agent, Agent]> {
  const a = t.agent();
  const b = t.agent();
  await login(a);
  await login(b);
  return [a, b];
}

async function tokenOf(agent: Agent): Promise<string> {
  const res = await agent.get('/token').set('accept', 'application/json').expect(200);
  return res.body.token as string;
}

describe('token sets bound to an owner the app chooses', () => {
  let t: TestApp;
  let redis: Redis;

  beforeEach(async () => {
    chooseOwner = (_req, _user, profile) => (profile.id ? `user-${profile.id}` : undefined);
    t = await ownerApp();
    redis = t.redis as Redis;
  });
  afterEach(async () => {
    await t.close();
  });

  it('the same user logging in from two browsers sees one token set, refreshed once for both', async () => {
    const [a, b] = await twoBrowsers(t);
    // Both sessions hold the owner id only (never a token), and it is the user's.
    expect(await t.ownerOf(a)).toBe('u:user-1001');
    expect(await t.ownerOf(b)).toBe('u:user-1001');
    expect(await redis.keys(`${t.prefix}tok:*`)).toEqual([`${t.prefix}tok:{u:user-1001}:example`]);
    const first = await tokenOf(a);
    expect(await tokenOf(b)).toBe(first);

    await t.expireToken('u:user-1001');
    t.sandbox.engine.resetCounters();
    const [fromA, fromB] = await Promise.all([tokenOf(a), tokenOf(b)]);
    expect(fromA).toBe(fromB);
    expect(fromA).not.toBe(first);
    expect(t.sandbox.engine.counters.refresh).toBe(1);
  });

  it('a logout ends the session but keeps the owner\'s tokens: the other browser and keeper.forOwner() go on', async () => {
    const [a, b] = await twoBrowsers(t);
    await a.post('/logout').expect(204);
    await a.get('/token').set('accept', 'application/json').expect(401);
    expect(await tokenOf(b)).toBeTruthy();

    const token = await t.keeper.forOwner('user-1001').token('example');
    expect(hash(token.accessToken)).toBe(await tokenOf(b));
    expect(t.sandbox.engine.counters.revoke).toBe(0);
  });

  it('logout({ disconnect: true }) revokes and removes the owner\'s tokens for every browser and worker', async () => {
    const [a, b] = await twoBrowsers(t);
    await a.post('/logout-all').expect(204);
    expect(t.sandbox.engine.counters.revoke).toBe(1);
    await b.get('/token').set('accept', 'application/json').expect(401);
    await expect(t.keeper.forOwner('user-1001').token('example')).rejects.toMatchObject({ code: ErrorCodes.AUTHORIZATION_REQUIRED, provider: 'example' });
  });

  it('lists what an owner has connected — provider, expiry, scope, when — and never a token', async () => {
    const before = Date.now();
    const a = t.agent();
    await login(a);
    const owner = t.keeper.forOwner('user-1001');
    const connections = await owner.connections();
    expect(connections).toEqual([
      { provider: 'example', expiresAt: expect.any(Date), scope: 'read', connectedAt: expect.any(Date), refreshable: true },
    ]);
    expect(connections[0]!.connectedAt.getTime()).toBeGreaterThanOrEqual(before);
    // A refresh changes the expiry, not when the user connected.
    const stored = (await t.store.get('u:user-1001', 'example'))!;
    await t.store.put('u:user-1001', 'example', { ...stored.tokenSet, expiresAt: Date.now() - 1000 }, stored.generation, stored.connectedAt);
    await tokenOf(a);
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    const after = await owner.connections();
    expect(after[0]!.connectedAt).toEqual(connections[0]!.connectedAt);
    const { tokenSet } = (await t.store.get('u:user-1001', 'example'))!;
    const listed = JSON.stringify([after, (await a.get('/connections').expect(200)).body]);
    expect(listed).not.toContain(tokenSet.accessToken);
    expect(listed).not.toContain(tokenSet.refreshToken!);
    expect((await a.get('/connections').expect(200)).body).toEqual([expect.objectContaining({ provider: 'example', scope: 'read', refreshable: true })]);
    expect(await t.keeper.forOwner('someone-else').connections()).toEqual([]);
  });

  it('disconnect(provider) revokes, deletes, and says whether it was connected', async () => {
    const a = t.agent();
    await login(a);
    const owner = t.keeper.forOwner('user-1001');
    await expect(owner.disconnect('example')).resolves.toBe(true);
    expect(t.sandbox.engine.counters.revoke).toBe(1);
    await expect(owner.disconnect('example')).resolves.toBe(false);
    expect(await owner.connections()).toEqual([]);
    await a.get('/token').set('accept', 'application/json').expect(401);
    await expect(owner.disconnect('nope')).rejects.toMatchObject({ code: ErrorCodes.CONFIGURATION_INVALID });
  });

  it('the final refusal of the refresh token: a typed error the job can act on, an event naming the owner, the set gone', async () => {
    await login(t.agent());
    const events: unknown[] = [];
    t.keeper.events.on('reauthorization:required', (event) => events.push(event));
    await t.expireToken('u:user-1001');
    t.sandbox.engine.injectFault('token', { status: 400, body: JSON.stringify({ error: 'invalid_grant' }) });
    const owner = t.keeper.forOwner('user-1001');
    await expect(owner.token('example')).rejects.toMatchObject({ code: ErrorCodes.REAUTHORIZATION_REQUIRED, provider: 'example', oauthError: 'invalid_grant' });
    expect(events).toEqual([{ provider: 'example', owner: 'user-1001', oauthError: 'invalid_grant' }]);
    expect(await owner.connections()).toEqual([]);
    await expect(owner.fetch('example', '/whoami')).rejects.toMatchObject({ code: ErrorCodes.AUTHORIZATION_REQUIRED });
  });

  it('a fault on the refresh keeps the set: the job gets REFRESH_UNAVAILABLE and succeeds later', async () => {
    await login(t.agent());
    await t.expireToken('u:user-1001');
    t.sandbox.engine.injectFault('token', { status: 503, times: 10 });
    const owner = t.keeper.forOwner('user-1001');
    await expect(owner.token('example')).rejects.toMatchObject({ code: ErrorCodes.REFRESH_UNAVAILABLE, transient: true });
    t.sandbox.engine.clearFaults();
    const res = await owner.fetch('example', '/whoami');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { user: string }).user).toBe('1001');
  });

  it('retention slides with use: a permanent set a job keeps using gets maxAgeSeconds again', async () => {
    await login(t.agent());
    const key = `${t.prefix}tok:{u:user-1001}:example`;
    // As sop stores it: neither token ever expires.
    const stored = (await t.store.get('u:user-1001', 'example'))!;
    await t.store.put('u:user-1001', 'example', { ...stored.tokenSet, expiresAt: null, refreshTokenExpiresAt: null }, stored.generation, stored.connectedAt);
    await redis.expire(key, 5); // as if 30 days minus 5 seconds had passed since the last use
    const token = await t.keeper.forOwner('user-1001').token('example');
    expect(token.expiresAt).toBeNull();
    await until(async () => (await redis.ttl(key)) > 5, 'the use to give the set its retention again');
    expect(await redis.ttl(key)).toBeGreaterThan(29 * 24 * 3600);
  });

  it('checks owner keys before they become part of a Redis key', async () => {
    for (const bad of ['', 'a b', 'a{b}', 'x*', '-leading', 'é', 'x'.repeat(129), 'line\nbreak']) {
      expect(() => t.keeper.forOwner(bad)).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIGURATION_INVALID }));
    }
    expect(() => t.keeper.forOwner(42 as never)).toThrow(/owner key is 1 to 128 characters/);
    expect(t.keeper.forOwner('alice@example.com').owner).toBe('alice@example.com');

    // An owner option that returns an unusable key fails the login with the fix, and stores nothing.
    chooseOwner = () => 'user 1001';
    const agent = t.agent();
    const start = await agent.get('/auth/example').expect(302);
    const callback = new URL((await fetch(start.headers['location'] as string, { redirect: 'manual' })).headers.get('location')!);
    const res = await agent.get(callback.pathname + callback.search).set('accept', 'application/json').expect(500);
    expect(res.body).toMatchObject({ error: ErrorCodes.CONFIGURATION_INVALID });
    expect(res.body.message).toMatch(/owner option/);
    expect(res.body.message).not.toContain('user 1001');
    expect(await redis.keys(`${t.prefix}tok:*`)).toEqual([]);
  });

  it('an owner option returning undefined keeps today\'s behaviour: the session\'s own random owner, removed at logout', async () => {
    chooseOwner = () => undefined;
    const a = t.agent();
    await login(a);
    const owner = await t.ownerOf(a);
    expect(owner).toMatch(/^[A-Za-z0-9_-]{24}$/);
    await a.post('/logout').expect(204);
    expect(t.sandbox.engine.counters.revoke).toBe(1);
    expect(await redis.keys(`${t.prefix}tok:*`)).toEqual([]);
  });
});

describe('many owners at once, their requests and jobs overlapping (sandbox answers delayed)', () => {
  const USERS: SandboxUser[] = Array.from({ length: 8 }, (_, i) => ({ username: `user${i}`, password: `pw-${i}`, id: `id-${i}`, name: `User ${i}` }));
  let t: TestApp;

  beforeAll(async () => {
    chooseOwner = (_req, _user, profile) => `user-${profile.id}`;
    t = await ownerApp({ sandbox: { users: USERS, autoApprove: false, rotateRefreshTokens: true, detectRefreshReuse: true } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('each owner refreshes once, every web request and job call acts for its own user, no refresh token is reused', async () => {
    const browsers = await Promise.all(
      USERS.map(async (user) => {
        const agent = t.agent();
        const start = await agent.get('/auth/example').expect(302);
        const answer = await approveAs(start.headers['location'] as string, user);
        const callback = new URL(answer.location!);
        await agent.get(callback.pathname + callback.search).expect(303);
        return agent;
      }),
    );
    for (const user of USERS) await t.expireToken(`u:user-${user.id}`);
    t.sandbox.engine.resetCounters();
    // Every refresh answer is held 300 ms, so all owners' refreshes, requests and jobs overlap.
    t.sandbox.engine.injectFault('token', { delayMs: 300, times: USERS.length });
    let refreshing = 0;
    let peak = 0;
    t.keeper.events.on('refresh:start', () => (peak = Math.max(peak, ++refreshing)));
    t.keeper.events.on('refresh:success', () => (refreshing -= 1));

    const calls = USERS.flatMap((user, i) => {
      const job = t.keeper.forOwner(`user-${user.id}`);
      const jobCall = async () => {
        const res = await job.fetch('example', '/whoami');
        return { expected: user.id, status: res.status, user: ((await res.json()) as { user: string }).user };
      };
      const webCall = async () => {
        const res = await browsers[i]!.get('/api-whoami').set('accept', 'application/json');
        return { expected: user.id, status: res.status, user: res.body.user as string };
      };
      return [jobCall(), jobCall(), jobCall(), webCall(), webCall()];
    });
    const answers = await Promise.all(calls);
    expect(answers.filter((a) => a.status !== 200 || a.user !== a.expected)).toEqual([]);
    expect(t.sandbox.engine.counters.refresh).toBe(USERS.length);
    expect(t.sandbox.engine.counters.refreshReuse).toBe(0);
    expect(peak).toBeGreaterThan(1);
    // Nobody was logged out.
    for (const browser of browsers) await browser.get('/token').set('accept', 'application/json').expect(200);
  });
});
