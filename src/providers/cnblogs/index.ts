/**
 * 博客园 OpenAPI (cnblogs): an IdentityServer OpenID Connect provider.
 *
 * Every quirk is declared here, as data and hooks of the definition: endpoints come
 * from discovery (fetched once per issuer), id_tokens are checked with jose against the
 * provider's JWKS, the documented hybrid `code id_token` answer may arrive in the URL
 * fragment or as a cross-site form POST (both reach the server through the keeper's
 * relay page, hence `formPostCallback: true`), and revocation uses HTTP Basic while the
 * token endpoint takes the client secret in the form body.
 */
import type { JWTPayload } from 'jose';
import { ErrorCodes } from '../../errors.js';
import type { TokenSet } from '../../lib/token-set.js';
import { defineProvider } from '../../provider/define.js';
import { standardRevoke, standardTokenRequest } from '../../provider/standard.js';
import type {
  AuthorizationContext,
  CallbackParams,
  Grant,
  Profile,
  ProviderDefinition,
  TransactionFacts,
} from '../../provider/types.js';
import { bindProvider } from '../../passport/bind.js';
import type { OAuthKeeperStrategy } from '../../passport/strategy.js';
import { CnblogsMetadataCache } from './discovery.js';
import { idTokenError, subjectOf, verifyCnblogsIdToken, type IdTokenExpectations } from './id-token.js';
import {
  CNBLOGS_DEFAULT_API_URL,
  CNBLOGS_DEFAULT_SCOPE,
  cnblogsIssuer,
  cnblogsResponseMode,
  cnblogsResponseType,
  PROVIDER,
  validateCnblogsOptions,
  type CnblogsOptions,
} from './options.js';
import { fetchCnblogsProfile } from './profile.js';

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
export { oidcHalfHash, verifyCnblogsIdToken } from './id-token.js';
export type { IdTokenChannel, IdTokenExpectations } from './id-token.js';
export { cnblogsProfile } from './profile.js';

/**
 * A cnblogs provider definition with its own discovery and JWKS caches.
 * {@link cnblogsProvider} is one shared instance; {@link CnblogsStrategy} makes its own.
 */
export function createCnblogsProvider(): ProviderDefinition<CnblogsOptions> {
  const cache = new CnblogsMetadataCache();
  // The front-channel id_token, nonce included, is checked before the code is spent (checkCallback).
  const frontChannelClaims = new WeakMap<CallbackParams, JWTPayload>();

  const verify = async (options: CnblogsOptions, idToken: string, expect: IdTokenExpectations): Promise<JWTPayload> => {
    const metadata = await cache.metadata(options);
    return verifyCnblogsIdToken(options, metadata, cache.keys(metadata, options), idToken, expect);
  };

  const verifyFrontChannel = async (options: CnblogsOptions, params: CallbackParams): Promise<JWTPayload> => {
    const idToken = params.all['id_token'];
    if (idToken === undefined || idToken.length === 0) {
      throw idTokenError(
        ErrorCodes.ID_TOKEN_INVALID,
        'callback',
        'the callback carries no id_token although responseType is "code id_token"; check that responseMode matches how the callback is delivered',
      );
    }
    return verify(options, idToken, { channel: 'callback', ...(params.code === undefined ? {} : { code: params.code }), requireCodeHash: true });
  };

  const definition = defineProvider<CnblogsOptions>({
    name: PROVIDER,
    // The documented IdentityServer paths; the hooks below use the discovered endpoints.
    authorizationURL: (o) => `${cnblogsIssuer(o)}/connect/authorize`,
    tokenURL: (o) => `${cnblogsIssuer(o)}/connect/token`,
    scope: CNBLOGS_DEFAULT_SCOPE,
    pkce: true,
    nonce: true,
    formPostCallback: true,
    clientAuthentication: 'client_secret_post',
    api: { baseURL: (o) => (o.apiURL ?? CNBLOGS_DEFAULT_API_URL).replace(/\/+$/, '') },
    hooks: {
      validateOptions: validateCnblogsOptions,

      async authorizationURL(options: CnblogsOptions, context: AuthorizationContext): Promise<URL> {
        const metadata = await cache.metadata(options);
        const url = new URL(metadata.authorizationEndpoint);
        const mode = cnblogsResponseMode(options);
        const params: Record<string, string> = {
          client_id: options.clientID,
          response_type: cnblogsResponseType(options),
          scope: context.scope,
          redirect_uri: context.redirectUri,
          state: context.state,
        };
        if (mode !== 'query') params['response_mode'] = mode;
        if (context.nonce !== undefined) params['nonce'] = context.nonce;
        if (context.codeChallenge !== undefined) {
          params['code_challenge'] = context.codeChallenge;
          params['code_challenge_method'] = 'S256';
        }
        for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
        return url;
      },

      async checkCallback(options: CnblogsOptions, params: CallbackParams, facts: TransactionFacts): Promise<void> {
        if (cnblogsResponseType(options) !== 'code id_token' || params.code === undefined) return;
        const claims = await verifyFrontChannel(options, params);
        if (facts.nonce !== undefined && claims['nonce'] !== facts.nonce) throw idTokenError(ErrorCodes.ID_TOKEN_NONCE_MISMATCH, 'callback');
        frontChannelClaims.set(params, claims);
      },

      async requestToken(options: CnblogsOptions, grant: Grant): Promise<TokenSet> {
        const metadata = await cache.metadata(options);
        const tokenSet = await standardTokenRequest(
          { provider: PROVIDER, url: metadata.tokenEndpoint, clientAuthentication: 'client_secret_post', parameterPlacement: 'body' },
          options,
          grant,
        );
        if (grant.grantType === 'refresh_token' && tokenSet.idToken !== undefined) {
          // OpenID Connect §12.2: a refreshed id_token must be valid and about the same user.
          const claims = await verify(options, tokenSet.idToken, { channel: 'refresh response', accessToken: tokenSet.accessToken });
          const before = subjectOf(grant.previous.idToken);
          if (before !== undefined && claims.sub !== before) {
            throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, 'refresh response', 'it is about another user (sub) than the one who logged in');
          }
        }
        return tokenSet;
      },

      async validateTokenSet(
        options: CnblogsOptions,
        tokenSet: TokenSet,
        facts: TransactionFacts,
        callback: CallbackParams,
      ): Promise<Record<string, unknown>> {
        let front: JWTPayload | undefined;
        if (cnblogsResponseType(options) === 'code id_token') {
          front = frontChannelClaims.get(callback) ?? (await verifyFrontChannel(options, callback));
          frontChannelClaims.delete(callback);
          if (facts.nonce !== undefined && front['nonce'] !== facts.nonce) throw idTokenError(ErrorCodes.ID_TOKEN_NONCE_MISMATCH, 'callback');
        }
        if (tokenSet.idToken === undefined) {
          throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, 'token response', 'the token response carries no id_token although the scope includes openid');
        }
        const claims = await verify(options, tokenSet.idToken, {
          channel: 'token response',
          ...(facts.nonce === undefined ? {} : { nonce: facts.nonce }),
          ...(callback.code === undefined ? {} : { code: callback.code }),
          accessToken: tokenSet.accessToken,
        });
        if (front && (front.sub !== claims.sub || front.iss !== claims.iss)) {
          throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, 'token response', 'it is about another user (sub) than the id_token of the callback');
        }
        return { ...claims };
      },

      async userProfile(options: CnblogsOptions, tokenSet: TokenSet, claims: Record<string, unknown> | undefined): Promise<Profile> {
        const metadata = await cache.metadata(options);
        return fetchCnblogsProfile(options, metadata.userinfoEndpoint, tokenSet, claims);
      },

      async revoke(options: CnblogsOptions, tokenSet: TokenSet): Promise<void> {
        const metadata = await cache.metadata(options);
        await standardRevoke({ provider: PROVIDER, url: metadata.revocationEndpoint, clientAuthentication: 'client_secret_basic' }, options, tokenSet);
      },
    },
  });
  return definition;
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
