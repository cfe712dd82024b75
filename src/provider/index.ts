/**
 * `oauth-keeper/provider`: the kit for provider authors — the standard RFC 6749 pieces
 * that `defineProvider` is made of, for use inside custom hooks.
 */
export { defineProvider, validateCommonOptions } from './define.js';
export type { ApiSpec, ProviderHooks, ProviderSpec } from './define.js';
export {
  attachBearer,
  basicAuthorization,
  grantParameters,
  isHttp401,
  readRetryAfter,
  readStandardCallback,
  readTokenResponse,
  standardRevoke,
  standardTokenRequest,
} from './standard.js';
export type { ClientAuthentication, ParameterPlacement, StandardTokenRequestConfig } from './standard.js';
export type * from './types.js';
