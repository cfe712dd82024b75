import { ErrorCodes, OAuthKeeperError } from '../errors.js';
import type { CallbackParams, ProviderDefinition, ProviderOptions } from '../provider/types.js';
import { mergeRefreshed, type TokenSet } from './token-set.js';

/**
 * The one place tokens are obtained: code exchange at login, refresh by the refresh
 * coordinator, revocation at logout. It drives a provider definition's hooks and makes
 * sure whatever they throw arrives as an OAuthKeeperError.
 */
/** Extra token request parameters per grant (a strategy's `tokenParams`). */
export type TokenParams = (grant: { grantType: 'authorization_code' | 'refresh_token' }) => Record<string, string>;

export class TokenClient<O extends ProviderOptions = ProviderOptions> {
  constructor(
    readonly name: string,
    readonly provider: ProviderDefinition<O>,
    readonly options: Readonly<O>,
    readonly extraParams: TokenParams = () => ({}),
    /** Rewrites a token endpoint's typed error (a strategy's `parseErrorResponse`). */
    readonly parseError: (error: OAuthKeeperError) => OAuthKeeperError = (error) => error,
  ) {}

  #extra(grantType: 'authorization_code' | 'refresh_token'): { extraParams?: Record<string, string> } {
    const extra = this.extraParams({ grantType });
    return Object.keys(extra).length === 0 ? {} : { extraParams: extra };
  }

  async exchangeCode(input: { code: string; redirectUri: string; codeVerifier?: string; callback: CallbackParams }): Promise<TokenSet> {
    const tokenSet = await this.#guard(() =>
      this.provider.requestToken(this.options, {
        grantType: 'authorization_code',
        code: input.code,
        redirectUri: input.redirectUri,
        callback: input.callback,
        ...(input.codeVerifier === undefined ? {} : { codeVerifier: input.codeVerifier }),
        ...this.#extra('authorization_code'),
      }),
    );
    // In place: a provider may key what it verified by this very object (validateTokenSet).
    tokenSet.redirectUri = input.redirectUri;
    return tokenSet;
  }

  /** Refreshes and merges: a refresh answer without a new refresh token keeps the old one. */
  async refresh(previous: TokenSet): Promise<TokenSet> {
    if (previous.refreshToken === undefined) {
      throw new OAuthKeeperError(
        ErrorCodes.REAUTHORIZATION_REQUIRED,
        `The ${this.name} token has expired and there is no refresh token; the user must authorize again.`,
        { provider: this.name },
      );
    }
    const refreshToken = previous.refreshToken;
    const next = await this.#guard(() =>
      this.provider.requestToken(this.options, { grantType: 'refresh_token', refreshToken, previous, ...this.#extra('refresh_token') }),
    );
    return mergeRefreshed(previous, next);
  }

  get canRevoke(): boolean {
    return typeof this.provider.revoke === 'function';
  }

  async revoke(tokenSet: TokenSet): Promise<void> {
    if (!this.provider.revoke) return;
    const revoke = this.provider.revoke.bind(this.provider);
    await this.#guard(() => revoke(this.options, tokenSet));
  }

  async #guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (cause) {
      throw this.#named(cause instanceof OAuthKeeperError && cause.code === ErrorCodes.TOKEN_ENDPOINT_FAILED ? this.parseError(cause) : cause);
    }
  }

  #named(cause: unknown): OAuthKeeperError {
    if (!(cause instanceof OAuthKeeperError)) {
      return new OAuthKeeperError(ErrorCodes.TOKEN_ENDPOINT_FAILED, `The ${this.name} token request failed unexpectedly; see error.cause.`, {
        provider: this.name,
        cause,
        transient: true,
      });
    }
    if (cause.provider === undefined || cause.provider === this.name) return cause;
    // A provider's hooks name the provider type; the caller knows the strategy by its own name.
    return new OAuthKeeperError(cause.code, cause.message, {
      status: cause.status,
      provider: this.name,
      transient: cause.transient,
      grantInvalid: cause.grantInvalid,
      ...(cause.retryAfter === undefined ? {} : { retryAfter: cause.retryAfter }),
      ...(cause.cause === undefined ? {} : { cause: cause.cause }),
      ...(cause.oauthError === undefined ? {} : { oauthError: cause.oauthError }),
      ...(cause.details === undefined ? {} : { details: cause.details }),
    });
  }
}
