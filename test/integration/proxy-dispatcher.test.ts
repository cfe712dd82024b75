import { randomBytes } from 'node:crypto';
import { Agent, type Dispatcher } from 'undici';
import { MemoryBackend, OAuthKeeperStrategy, TokenStore, tokenKeeper } from '../../src/index';
import { createTestApp, exampleProvider, login, type TestApp } from '../helpers/app';

/**
 * The keeper's `api: { dispatcher }`: every call to a provider's API — the proxy,
 * `req.oauthFetch`, `forOwner(key).fetch`, and the retry after a refresh — goes through the
 * app's undici Dispatcher (a ProxyAgent, a MockAgent, an Agent of its own settings).
 */

function recordingDispatcher(): { dispatcher: Dispatcher; seen: string[]; agent: Agent } {
  const seen: string[] = [];
  const agent = new Agent();
  const dispatcher = agent.compose((dispatch) => (options, handler) => {
    seen.push(`${options.method} ${new URL(options.path, options.origin).pathname}`);
    return dispatch(options, handler);
  });
  return { dispatcher, seen, agent };
}

describe('the keeper option api.dispatcher', () => {
  let t: TestApp;
  let recorder: ReturnType<typeof recordingDispatcher>;
  beforeEach(async () => {
    recorder = recordingDispatcher();
    t = await createTestApp({
      keeper: { api: { dispatcher: recorder.dispatcher }, owner: () => 'user-1' },
      routes: (app, keeper) => {
        app.use('/proxy', keeper.ensureAuthorized('example', { unauthorized: 'status' }), keeper.proxy('example'));
        app.get('/fetched', async (req, res) => {
          const response = await req.oauthFetch!('example', '/fetched');
          res.status(response.status).json(await response.json());
        });
      },
    });
  });
  afterEach(async () => {
    await t.keeper.close();
    await t.close();
    await recorder.agent.close();
  });

  it('carries every API call: the proxy, req.oauthFetch, forOwner(key).fetch and the retry after a refresh', async () => {
    const agent = t.agent();
    await login(agent);
    expect((await agent.get('/proxy/proxied').expect(200)).body).toMatchObject({ ok: true, path: '/api/proxied' });
    expect((await agent.get('/fetched').expect(200)).body).toMatchObject({ ok: true, path: '/api/fetched' });
    const worker = await t.keeper.forOwner('user-1').fetch('example', '/worker');
    expect(await worker.json()).toMatchObject({ ok: true, path: '/api/worker' });

    // The provider stops taking the token: refreshed (through the strategy's HTTP layer), then the call sent again.
    t.sandbox.engine.expireAccessTokens();
    expect((await agent.get('/proxy/again').expect(200)).body).toMatchObject({ ok: true, path: '/api/again' });

    expect(recorder.seen).toEqual(['GET /api/proxied', 'GET /api/fetched', 'GET /api/worker', 'GET /api/again', 'GET /api/again']);
  });

  it('is the app\'s to close: keeper.close() leaves it working', async () => {
    const agent = t.agent();
    await login(agent);
    await t.keeper.close();
    await agent.get('/proxy/after-close').expect(200);
    expect(recorder.seen).toEqual(['GET /api/after-close']);
  });
});

describe('the keeper\'s own connection pool', () => {
  it('is ended by keeper.close(), and a later call opens it again', async () => {
    const t = await createTestApp({
      routes: (app, keeper) => {
        app.use('/proxy', keeper.proxy('example'));
      },
    });
    try {
      const agent = t.agent();
      await login(agent);
      await agent.get('/proxy/one').expect(200);
      await t.keeper.close();
      expect((await agent.get('/proxy/two').expect(200)).body).toMatchObject({ ok: true, path: '/api/two' });
    } finally {
      await t.keeper.close();
      await t.close();
    }
  });
});

test('an api.dispatcher that is not a Dispatcher is refused at start-up', () => {
  const strategy = new OAuthKeeperStrategy(exampleProvider, { clientID: 'c', clientSecret: 's', callbackURL: '/cb', baseURL: 'https://id.example' });
  const store = new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [randomBytes(32)] });
  expect(() => tokenKeeper({ strategies: [strategy], store, api: { dispatcher: { dispatch: 1 } as unknown as Dispatcher } })).toThrow(
    /api\.dispatcher must be an undici Dispatcher/,
  );
});
