/**
 * 博客园 OpenAPI (cnblogs): an IdentityServer OpenID Connect provider.
 *
 * Every quirk is declared here, as data and hooks of the definition. The OpenID Connect
 * core is openid-client (a certified relying party): discovery, the authorization request,
 * the code and hybrid `code id_token` grants, refresh and every id_token check. The
 * documented hybrid answer may arrive in the URL fragment or as a cross-site form POST
 * (both reach the server through the keeper's relay page, hence `formPostCallback: true`);
 * revocation uses HTTP Basic while the token endpoint takes the client secret in the form body.
 */
import { defineProvider } from '../../provider/define.js';
import { standardRevoke } from '../../provider/standard.js';
import type { CallbackParams, Profile, ProviderDefinition, TransactionFacts } from '../../provider/types.js';
import { bindProvider } from '../../passport/bind.js';
import type { OAuthKeeperStrategy } from '../../passport/strategy.js';
import type { TokenSet } from '../../lib/token-set.js';
import { CNBLOGS_DEFAULT_API_URL, CNBLOGS_DEFAULT_SCOPE, cnblogsIssuer, PROVIDER, validateCnblogsOptions, type CnblogsOptions } from './options.js';
import { describeCnblogsAuthorizationError } from './authorization-error.js';
import { fetchCnblogsProfile } from './profile.js';
import { CnblogsRelyingParty } from './relying-party.js';

export {
  CNBLOGS_DEFAULT_ISSUER,
  CNBLOGS_DEFAULT_API_URL,
  CNBLOGS_DEFAULT_SCOPE,
  cnblogsIssuer,
  cnblogsResponseType,
  cnblogsResponseMode,
  validateCnblogsOptions,
} from './options.js';
export type { CnblogsOptions, CnblogsResponseType, CnblogsResponseMode } from './options.js';
export { fetchCnblogsMetadata } from './discovery.js';
export type { CnblogsMetadata } from './discovery.js';
export { oidcHalfHash } from './id-token.js';
export type { IdTokenChannel } from './id-token.js';
export { cnblogsProfile } from './profile.js';

/**
 * A cnblogs provider definition with its own discovery and key caches.
 * {@link cnblogsProvider} is one shared instance; {@link CnblogsStrategy} makes its own.
 */
export function createCnblogsProvider(): ProviderDefinition<CnblogsOptions> {
  const rp = new CnblogsRelyingParty();
  // What the login remembered (nonce), for the code exchange that follows the callback check.
  const logins = new WeakMap<CallbackParams, TransactionFacts>();
  // The verified id_token claims of each login's token set, for validateTokenSet.
  const verified = new WeakMap<TokenSet, Record<string, unknown>>();

  return defineProvider<CnblogsOptions>({
    name: PROVIDER,
    // The documented IdentityServer paths; the hooks below use the discovered endpoints.
    authorizationURL: (o) => `${cnblogsIssuer(o)}/connect/authorize`,
    tokenURL: (o) => `${cnblogsIssuer(o)}/connect/token`,
    scope: CNBLOGS_DEFAULT_SCOPE,
    pkce: true,
    nonce: true,
    formPostCallback: true,
    clientAuthentication: 'client_secret_post',
    optionNames: ['issuer', 'apiURL', 'responseType', 'responseMode', 'clockToleranceSeconds', 'jwksCooldownSeconds'],
    api: { baseURL: (o) => (o.apiURL ?? CNBLOGS_DEFAULT_API_URL).replace(/\/+$/, '') },
    hooks: {
      validateOptions: validateCnblogsOptions,

      authorizationURL: (options, context) => rp.authorizationURL(options, context),

      describeAuthorizationError: describeCnblogsAuthorizationError,

      checkCallback(_options, params, facts) {
        logins.set(params, facts);
      },

      async requestToken(options, grant) {
        if (grant.grantType === 'refresh_token') {
          // The document's refresh request carries redirect_uri: the one of the login, or an absolute callbackURL.
          const redirectUri = grant.previous.redirectUri ?? (/^https?:\/\//.test(options.callbackURL) ? options.callbackURL : undefined);
          return rp.refresh(options, grant, redirectUri === undefined ? {} : { redirect_uri: redirectUri });
        }
        const { tokenSet, claims } = await rp.exchangeCode(options, grant, logins.get(grant.callback));
        logins.delete(grant.callback);
        verified.set(tokenSet, claims);
        return tokenSet;
      },

      async validateTokenSet(_options, tokenSet) {
        return verified.get(tokenSet);
      },

      async userProfile(options, tokenSet, claims): Promise<Profile> {
        const metadata = await rp.cache.metadata(options);
        return fetchCnblogsProfile(options, metadata.userinfoEndpoint, tokenSet, claims);
      },

      async revoke(options, tokenSet) {
        const metadata = await rp.cache.metadata(options);
        await standardRevoke({ provider: PROVIDER, url: metadata.revocationEndpoint, clientAuthentication: 'client_secret_basic' }, options, tokenSet);
      },
    },
  });
}

/** The shared cnblogs definition, for `new OAuthKeeperStrategy(cnblogsProvider, options)`. */
export const cnblogsProvider: ProviderDefinition<CnblogsOptions> = createCnblogsProvider();

/**
 * Passport strategy for 博客园 (cnblogs) OpenID Connect. Default name `cnblogs`.
 *
 * ```ts
 * passport.use(new CnblogsStrategy({ clientID, clientSecret, callbackURL: '/auth/cnblogs/callback' }));
 * ```
 */
// Each strategy instance gets a provider of its own, with its own discovery and JWKS caches.
export const CnblogsStrategy = bindProvider('CnblogsStrategy', createCnblogsProvider);
export type CnblogsStrategy<User = Profile> = OAuthKeeperStrategy<CnblogsOptions, User>;
