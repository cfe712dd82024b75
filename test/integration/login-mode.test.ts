import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import session from 'express-session';
import { Passport } from 'passport';
import request from 'supertest';
import { MemoryBackend, OAuthKeeperStrategy, oauthKeeper, TokenStore, type Profile } from '../../src/index';
import { startOAuth2Sandbox, type RunningSandbox } from '../../src/sandbox/index';
import { exampleProvider, visitProvider, type ExampleOptions } from '../helpers/app';

/** Two providers on one sandbox: `signin` signs its user in, `connect` only connects (the keeper's logIn per provider). */
async function twoProviderApp(sandbox: RunningSandbox) {
  const strategy = (name: string) =>
    new OAuthKeeperStrategy<ExampleOptions, { id: string; via: string }>(exampleProvider, { name, clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: `/auth/${name}/callback`, baseURL: sandbox.url }, (_tokens, profile: Profile, done) =>
      done(null, { id: profile.id, via: name }),
    );
  const passport = new Passport();
  passport.serializeUser((user, done) => done(null, user));
  passport.deserializeUser((user, done) => done(null, user as Express.User));
  const keeper = oauthKeeper({
    strategies: [strategy('signin'), strategy('connect')],
    store: new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [randomBytes(32)] }),
    passport,
    logIn: (provider) => provider === 'signin',
  });
  const app = express();
  app.use(session({ secret: 'test', resave: false, saveUninitialized: false, cookie: { sameSite: 'lax' } }));
  app.use(passport.initialize());
  app.use(passport.session());
  app.use(keeper.middleware());
  app.get('/whoami', async (req, res) => {
    res.json({ user: req.user ?? null, signin: (await keeper.token(req, 'signin')) !== null, connect: (await keeper.token(req, 'connect')) !== null });
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function loginWith(agent: ReturnType<typeof request.agent>, provider: string): Promise<void> {
  const start = await agent.get(`/auth/${provider}`).expect(302);
  const callback = new URL(await visitProvider(start.headers['location'] as string));
  await agent.get(callback.pathname + callback.search).expect(303);
}

describe('sign-in versus connect, per provider (keeper option logIn)', () => {
  let sandbox: RunningSandbox;
  let app: Awaited<ReturnType<typeof twoProviderApp>>;
  beforeAll(async () => {
    sandbox = await startOAuth2Sandbox({ autoApprove: true });
    app = await twoProviderApp(sandbox);
  });
  afterAll(async () => {
    app.server.closeAllConnections();
    await new Promise((resolve) => app.server.close(resolve));
    await sandbox.close();
  });

  it('connecting a provider keeps the signed-in user, and its tokens join the session', async () => {
    const agent = request.agent(app.url);
    await loginWith(agent, 'signin');
    expect((await agent.get('/whoami').expect(200)).body).toEqual({ user: expect.objectContaining({ via: 'signin' }), signin: true, connect: false });
    await loginWith(agent, 'connect');
    expect((await agent.get('/whoami').expect(200)).body).toEqual({ user: expect.objectContaining({ via: 'signin' }), signin: true, connect: true });
  });

  it('connecting first signs nobody in; signing in afterwards keeps what was connected', async () => {
    const agent = request.agent(app.url);
    await loginWith(agent, 'connect');
    expect((await agent.get('/whoami').expect(200)).body).toEqual({ user: null, signin: false, connect: true });
    await loginWith(agent, 'signin');
    expect((await agent.get('/whoami').expect(200)).body).toEqual({ user: expect.objectContaining({ via: 'signin' }), signin: true, connect: true });
  });

  it('many sessions signing in and connecting at once each keep their own user and tokens', async () => {
    const agents = Array.from({ length: 12 }, () => request.agent(app.url));
    await Promise.all(agents.map((agent, i) => (i % 2 === 0 ? loginWith(agent, 'signin').then(() => loginWith(agent, 'connect')) : loginWith(agent, 'connect'))));
    const seen = await Promise.all(agents.map(async (agent) => (await agent.get('/whoami').expect(200)).body));
    seen.forEach((body, i) => expect(body).toEqual(i % 2 === 0 ? { user: expect.objectContaining({ via: 'signin' }), signin: true, connect: true } : { user: null, signin: false, connect: true }));
  });

  it('refuses a logIn that is neither a boolean nor a function', () => {
    expect(() =>
      oauthKeeper({
        strategies: [new OAuthKeeperStrategy(exampleProvider, { clientID: 'c', clientSecret: 's', callbackURL: '/cb', baseURL: sandbox.url })],
        store: new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [randomBytes(32)] }),
        passport: new Passport(),
        logIn: 'connect' as never,
      }),
    ).toThrow(/logIn must be true \(sign in\), false \(only connect\) or a function/);
  });
});
