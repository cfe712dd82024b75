import { generateKeyPairSync } from 'node:crypto';
import { CnblogsStrategy, DiStrategy, OAuthKeeperStrategy, SopStrategy, type FetchLike, type OAuthKeeperStrategy as Strategy } from '../../src/index';
import type { RunningSandbox, RunningSopSandbox } from '../../src/sandbox/index';
import { startCnblogsSandbox, startDiSandbox, startOAuth2Sandbox } from '../../src/sandbox/index';
import { sopSandboxOptions, startSopSandboxForApp } from '../helpers/providers';
import { createTestApp, exampleProvider, login, type TestApp } from '../helpers/app';

/**
 * Every call the package makes to a provider — code exchange, refresh, userinfo,
 * discovery, the sop gateway, revocation — goes through the `fetch` given in the
 * strategy's options, when one is given (a proxy agent, tracing, a test double).
 */

function recordingFetch(): { fetch: FetchLike; paths: string[] } {
  const paths: string[] = [];
  return {
    paths,
    fetch: (input, init) => {
      const url = new URL(String(input));
      const form = typeof init.body === 'string' ? new URLSearchParams(init.body) : undefined;
      // The sop gateway is one URL: its method names the call.
      paths.push(form?.get('method') ? `${url.pathname} ${form.get('method')}` : `${url.pathname}${form?.get('grant_type') ? ` ${form.get('grant_type')}` : ''}`);
      return fetch(input, init);
    },
  };
}

const sopKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const client = { clientID: 'sandbox-client', clientSecret: 'sandbox-secret' };

const CASES: Array<[string, () => Promise<RunningSandbox>, (s: RunningSandbox, fetch: FetchLike) => Strategy<any, any>, string[]]> = [
  [
    'example',
    () => startOAuth2Sandbox({ autoApprove: true }),
    (s, fetch) => new OAuthKeeperStrategy(exampleProvider, { ...client, callbackURL: '/auth/example/callback', baseURL: s.url, fetch }),
    ['/token authorization_code', '/userinfo', '/token refresh_token', '/revoke'],
  ],
  [
    'di',
    () => startDiSandbox({ autoApprove: true }),
    (s, fetch) => new DiStrategy({ ...client, callbackURL: '/auth/di/callback', baseURL: s.url, fetch }),
    ['/oauth/token', '/oauth/token'],
  ],
  [
    'cnblogs',
    () => startCnblogsSandbox({ autoApprove: true }),
    (s, fetch) => new CnblogsStrategy({ ...client, callbackURL: '/auth/cnblogs/callback', responseType: 'code', issuer: s.url, apiURL: `${s.url}/api`, scope: 'openid profile CnBlogsApi offline_access', fetch }),
    // The signing keys (JWKS) too: every byte from the provider goes through the one HTTP layer.
    [
      '/.well-known/openid-configuration',
      '/.well-known/openid-configuration/jwks',
      '/connect/token authorization_code',
      '/connect/userinfo',
      '/connect/token refresh_token',
      '/connect/revocation',
    ],
  ],
  [
    'sop',
    () => startSopSandboxForApp(sopKeys),
    (s, fetch) => new SopStrategy({ ...sopSandboxOptions(s as RunningSopSandbox, sopKeys), fetch }),
    ['/ open.auth.token.app', '/ open.auth.token.app'],
  ],
];

describe.each(CASES)('%s: an injected fetch', (name, startSandbox, strategy, expected) => {
  let t: TestApp;
  afterEach(async () => {
    await t.close();
  });

  it('carries every call to the provider: login, refresh and logout', async () => {
    const recorder = recordingFetch();
    t = await createTestApp({ startSandbox, strategy: (s) => strategy(s, recorder.fetch) });
    const agent = t.agent();
    await login(agent, `/auth/${name}`);
    await t.expireToken(await t.ownerOf(agent));
    await agent.get('/me').set('accept', 'application/json').expect(200);
    await agent.post('/logout').set('origin', t.url).expect(204);
    expect(recorder.paths).toEqual(expected);
  });
});
