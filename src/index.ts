export { ErrorCodes, OAuthKeeperError, isOAuthKeeperError } from './errors.js';
export type { ErrorCode, OAuthKeeperErrorOptions } from './errors.js';

// The public surface: what an app mounts and configures. A provider's building blocks are
// on subpaths: oauth-keeper/provider (the kit for hooks), oauth-keeper/providers/<name>.
export { defineProvider } from './provider/define.js';
export type { ApiSpec, ProviderHooks, ProviderSpec } from './provider/define.js';
export type { ClientAuthentication, ParameterPlacement } from './provider/standard.js';
export type {
  ApiBinding,
  ApiRawResponse,
  ApiRequest,
  ApiResponseHead,
  AuthorizationContext,
  CallbackParams,
  CallbackRequest,
  Grant,
  Profile,
  ProviderDefinition,
  ProviderOptions,
  StateTransport,
  TransactionFacts,
} from './provider/types.js';

export { OAuthKeeperStrategy } from './passport/strategy.js';
export type { BoundStrategy } from './passport/bind.js';
export { keepTokens } from './passport/adopt.js';
export type { KeepTokensOptions, KeptVerify, KeptVerifyWithRequest, PassportVerified } from './passport/adopt.js';
export type { AuthenticateOptions, AuthenticationInfo, FailureInfo, StrategyOptions } from './passport/options.js';
export type {
  AnyVerifyFunction,
  AnyVerifyFunctionWithRequest,
  NoRequest,
  WithRequest,
  OAuth2VerifyFunction,
  OAuth2VerifyFunctionWithParams,
  OAuth2VerifyFunctionWithRequest,
  OAuth2VerifyFunctionWithRequestAndParams,
  VerifyDone,
  VerifyFunction,
  VerifyFunctionWithRequest,
} from './passport/verify.js';

export { TokenStore } from './store/token-store.js';
export type { SessionPrefetch, StoredTokenSet, TokenStoreOptions } from './store/token-store.js';
export type { StoredEntry, TokenStoreBackend } from './store/backend.js';
export { MemoryBackend } from './store/memory.js';
export { RedisBackend } from './store/redis.js';
export type { RedisBackendOptions, RedisClientLike } from './store/redis.js';

export { Keeper, oauthKeeper, ensureAuthorized } from './middleware/keeper.js';
export { authorized, type AuthorizedHandler } from './middleware/authorized.js';
export type {
  AuthorizedRequest,
  EnsureAuthorizedOptions,
  KeeperContext,
  KeeperLogger,
  KeeperOptions,
  LogoutOptions,
  OwnerOption,
  PassportLike,
  UnauthorizedBehaviour,
} from './middleware/keeper.js';
export { TokenKeeper, tokenKeeper } from './middleware/token-keeper.js';
export type { TokenKeeperOptions } from './middleware/token-keeper.js';
export type { OwnerTokens } from './middleware/owner-tokens.js';
export type { OwnerConnection } from './middleware/connections.js';

export { createProxy } from './middleware/proxy.js';
export { guardSessionStore, KeeperSessionStore } from './middleware/session-store.js';
export type { GuardSessionStoreOptions, KeeperSessionStoreOptions, SessionRedisClientLike } from './middleware/session-store.js';
export type { ForwardHeadersOption, ProxyKeeper, ProxyOptions } from './middleware/proxy.js';
export { createOAuthFetch } from './middleware/fetch.js';
export type { ApiClientOptions, KeeperApiOptions } from './lib/api/types.js';
export type { OAuthFetch, OAuthFetchBody, OAuthFetchInit } from './middleware/fetch.js';
export type { KeeperEvents, RefreshEvents, RefreshOptions } from './lib/refresh.js';
export type { ApiCallEvents, EventErrorCode, LoginEvents, LoginFailureOutcome, StoreEvents, StoreOperation } from './lib/events.js';
export { TELEMETRY_INSTRUMENTS } from './lib/telemetry.js';
export type {
  TelemetryAttributes,
  TelemetryCounter,
  TelemetryHistogram,
  TelemetryInstrument,
  TelemetryInstrumentOptions,
  TelemetryMeter,
  TelemetryOption,
  TelemetrySpan,
  TelemetryTracer,
} from './lib/telemetry.js';
export type { OAuthToken, TokenSet } from './lib/token-set.js';
export type { FetchLike } from './lib/http.js';
export type { EncryptionKey } from './lib/cipher.js';
export type { KeeperSessionData, LoginTransaction } from './passport/session.js';
export { safeReturnTo } from './lib/return-to.js';

export { DiStrategy } from './providers/di.js';
export type { DiOptions } from './providers/di.js';

export { SopStrategy } from './providers/sop/index.js';
export type { SopOptions, SopSignType, SopKey } from './providers/sop/index.js';

export { CnblogsStrategy } from './providers/cnblogs/index.js';
export type { CnblogsOptions, CnblogsResponseType, CnblogsResponseMode } from './providers/cnblogs/index.js';
