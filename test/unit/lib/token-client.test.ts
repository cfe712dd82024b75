import { ErrorCodes, OAuthKeeperError } from '../../../src/errors';
import { TokenClient } from '../../../src/lib/token-client';
import { defineProvider } from '../../../src/provider/define';

describe('TokenClient', () => {
  it('reports errors raised in a provider hook under the strategy name', async () => {
    const provider = defineProvider({
      name: 'acme',
      authorizationURL: 'https://id.acme.example/authorize',
      tokenURL: 'https://id.acme.example/token',
      hooks: {
        requestToken: async () => {
          throw new OAuthKeeperError(ErrorCodes.TOKEN_ENDPOINT_FAILED, 'The acme token endpoint refused.', { provider: 'acme', oauthError: 'invalid_grant', status: 502 });
        },
      },
    });
    const client = new TokenClient('acme-eu', provider, { clientID: 'c', clientSecret: 's', callbackURL: '/cb' });
    await expect(client.exchangeCode({ code: 'x', redirectUri: 'http://localhost/cb', callback: { all: {} } })).rejects.toMatchObject({
      code: ErrorCodes.TOKEN_ENDPOINT_FAILED,
      provider: 'acme-eu',
      oauthError: 'invalid_grant',
      status: 502,
    });
  });
});
