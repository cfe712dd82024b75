import type { Request, Response } from 'express';
import { Strategy as OAuth2Strategy } from 'passport-oauth2';
import { ErrorCodes, keepTokens, OAuthKeeperStrategy, type Profile, type VerifyDone } from '../../src/index';
import { createTestApp, exampleProvider, type TestApp } from '../helpers/app';

/**
 * A real passport-oauth2 `OAuth2Strategy` (what passport-github2, passport-google-oauth20
 * and most provider strategies are built on) brought under the keeper through public API
 * only: its verify is wrapped by `keepTokens`, its callback route ends in
 * `keeper.completeLogin()`. Its logins then get the encrypted store, `req.oauthToken`,
 * transparent refresh and the proxy, through the keeper strategy of the same name.
 */

describe('an existing passport-oauth2 strategy joins the keeper', () => {
  let t: TestApp;
  const verified: Array<{ accessToken: string; refreshToken: string | undefined; params: Record<string, unknown> }> = [];

  beforeEach(async () => {
    verified.length = 0;
    t = await createTestApp({
      sandbox: { autoApprove: true },
      // The keeper's handle on the provider, for refresh and the API: same client, same token endpoint.
      strategy: (s) =>
        new OAuthKeeperStrategy(exampleProvider, { name: 'acme', clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/acme/callback', baseURL: s.url }),
      keeper: { routes: false },
      routes: (app, keeper, passport) => {
        const sandboxURL = (keeper.strategy('acme').options as unknown as { baseURL: string }).baseURL;
        passport.use(
          'acme',
          new OAuth2Strategy(
            {
              authorizationURL: `${sandboxURL}/authorize`,
              tokenURL: `${sandboxURL}/token`,
              clientID: 'sandbox-client',
              clientSecret: 'sandbox-secret',
              callbackURL: '/auth/acme/callback',
              state: true,
              pkce: true,
            },
            keepTokens('acme', (accessToken: string, refreshToken: string | undefined, params: Record<string, unknown>, _profile: Profile, done: VerifyDone<unknown>) => {
              verified.push({ accessToken, refreshToken, params });
              done(null, { id: String(params['user_id']), via: 'passport-oauth2' });
            }),
          ),
        );
        app.get('/auth/acme', passport.authenticate('acme'));
        app.get('/auth/acme/callback', passport.authenticate('acme', { failureRedirect: '/failed', keepSessionInfo: true }), keeper.completeLogin());
        app.get('/acme/me', keeper.ensureAuthorized('acme', { unauthorized: 'status' }), (req: Request, res: Response) => {
          res.json({ user: req.user, scope: req.oauthToken!.scope, expiresAt: req.oauthToken!.expiresAt });
        });
        app.use('/api/acme', keeper.ensureAuthorized('acme', { unauthorized: 'status' }), keeper.proxy('acme'));
        app.use(keeper.errorHandler());
      },
    });
  });
  afterEach(async () => {
    await t.close();
  });

  async function loginThroughPassportOAuth2() {
    const agent = t.agent();
    const start = await agent.get('/auth/acme').expect(302);
    const authorize = new URL(start.headers['location'] as string);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    const callback = new URL((await fetch(authorize, { redirect: 'manual' })).headers.get('location')!);
    const done = await agent.get(callback.pathname + callback.search).expect(303);
    return { agent, landed: done.headers['location'] as string };
  }

  it('logs in, stores the tokens encrypted, refreshes them transparently and serves the proxy', async () => {
    const { agent, landed } = await loginThroughPassportOAuth2();
    expect(landed).toBe('/');
    expect(verified).toHaveLength(1);
    const owner = await t.ownerOf(agent);
    const stored = (await t.store.get(owner, 'acme'))!.tokenSet;
    expect(stored.accessToken).toBe(verified[0]!.accessToken);
    expect(stored.refreshToken).toBe(verified[0]!.refreshToken);

    const me = await agent.get('/acme/me').expect(200);
    expect(me.body.user).toEqual({ id: '1001', via: 'passport-oauth2' });

    // Expired: the keeper refreshes with the stored refresh token, at the same token endpoint.
    await t.expireToken(owner);
    const api = await agent.get('/api/acme/whoami').expect(200);
    expect(api.body.user).toBe('1001');
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    const refreshed = (await t.store.get(owner, 'acme'))!.tokenSet;
    expect(refreshed.accessToken).not.toBe(stored.accessToken);
    expect(refreshed.refreshToken).not.toBe(stored.refreshToken);
    // passport-oauth2 itself was asked once, at login; everything after went through the keeper.
    expect(verified).toHaveLength(1);
  });

  it('a token answer with an unusable token is refused with a typed error, and nothing is stored', async () => {
    t.sandbox.engine.injectFault('token', { body: '{"access_token":"bad\\r\\ntoken","token_type":"Bearer","expires_in":3600}' });
    const agent = t.agent();
    const start = await agent.get('/auth/acme').expect(302);
    const callback = new URL((await fetch(start.headers['location'] as string, { redirect: 'manual' })).headers.get('location')!);
    const res = await agent.get(callback.pathname + callback.search).set('accept', 'application/json');
    expect([res.status, res.body.error]).toEqual([502, ErrorCodes.TOKEN_RESPONSE_MALFORMED]);
    expect(await t.redis!.keys(`${t.prefix}tok:*`)).toEqual([]);
  });
});
