/**
 * The cnblogs relying party on openid-client, a certified OpenID Connect RP: the authorization
 * request, the code and hybrid (`code id_token`) grants, refresh, and every id_token check
 * (front channel included, signatures included). What stays ours: the HTTP layer every
 * request goes through, the token response's reading (typed errors, hostile values refused,
 * `invalid_grant` alone deleting tokens), and the error codes.
 */
import type * as OpenidClient from 'openid-client';
import { ErrorCodes, OAuthKeeperError } from '../../errors.js';
import { findCause, httpOptionsOf, tokenTransportError, TransportError, type HttpOptions } from '../../lib/http.js';
import type { TokenSet } from '../../lib/token-set.js';
import { readTokenResponse } from '../../provider/standard.js';
import type { AuthorizationContext, Grant, TransactionFacts } from '../../provider/types.js';
import { CnblogsMetadataCache, jwksUnavailable, keeperFetch, type Discovered, type JwksMemo } from './discovery.js';
import { checkIdTokenExtras, idTokenError, idTokenFailure, subjectOf, type IdTokenChannel } from './id-token.js';
import { openidClient, type Oidc } from './openid-client.js';
import { cnblogsResponseMode, cnblogsResponseType, PROVIDER, type CnblogsOptions } from './options.js';

type CodeGrant = Extract<Grant, { grantType: 'authorization_code' }>;
type RefreshGrant = Extract<Grant, { grantType: 'refresh_token' }>;

/** What one operation saw on the wire: how far it got, and the token answer as we read it. */
interface Operation {
  channel: IdTokenChannel;
  /** A code grant's answer must carry an id_token (the scope has openid). */
  idTokenRequired: boolean;
  tokenSet?: TokenSet;
}

function sameEndpoint(a: string, b: string): boolean {
  const x = new URL(a);
  const y = new URL(b);
  return x.origin === y.origin && x.pathname === y.pathname;
}

/** The callback as the URL openid-client reads it: hybrid answers in the fragment, code answers in the query. */
function callbackURL(grant: CodeGrant, hybrid: boolean): URL {
  const url = new URL(grant.redirectUri);
  const params = new URLSearchParams(grant.callback.all);
  if (hybrid) url.hash = params.toString();
  else for (const [k, v] of params) url.searchParams.set(k, v);
  return url;
}

export class CnblogsRelyingParty {
  readonly cache = new CnblogsMetadataCache();

  /** The authorization request, built by openid-client from the discovered endpoint. */
  async authorizationURL(options: CnblogsOptions, context: AuthorizationContext): Promise<URL> {
    const { oidc, config } = await this.#operation(options);
    const params: Record<string, string> = {
      response_type: cnblogsResponseType(options),
      scope: context.scope,
      redirect_uri: context.redirectUri,
      state: context.state,
    };
    const mode = cnblogsResponseMode(options);
    if (mode !== 'query') params['response_mode'] = mode;
    if (context.nonce !== undefined) params['nonce'] = context.nonce;
    if (context.codeChallenge !== undefined) {
      params['code_challenge'] = context.codeChallenge;
      params['code_challenge_method'] = 'S256';
    }
    return oidc.buildAuthorizationUrl(config, params);
  }

  /**
   * The callback checked and its code exchanged. In the hybrid flow the front-channel id_token
   * (signature, nonce, c_hash) is checked before the code is spent. Returns the token set and
   * the token response's verified id_token claims.
   */
  async exchangeCode(options: CnblogsOptions, grant: CodeGrant, facts: TransactionFacts | undefined): Promise<{ tokenSet: TokenSet; claims: Record<string, unknown> }> {
    const hybrid = cnblogsResponseType(options) === 'code id_token';
    const frontToken = grant.callback.all['id_token'];
    // The callback's id_token, read once: refused early when from the future, compared with the token response's after.
    let front: Record<string, unknown> | undefined;
    if (hybrid) {
      if (frontToken === undefined || frontToken.length === 0) {
        throw idTokenError(
          ErrorCodes.ID_TOKEN_INVALID,
          'callback',
          'the callback carries no id_token although responseType is "code id_token"; check that responseMode matches how the callback is delivered',
        );
      }
      // Refusal only (the signature is checked by openid-client next): a front-channel id_token from the future spends no code.
      front = checkIdTokenExtras(options, frontToken, 'callback');
    }
    if (facts?.nonce === undefined) {
      throw new OAuthKeeperError(ErrorCodes.CALLBACK_INVALID, 'The cnblogs callback was not checked against its login (no nonce); let the strategy handle the callback.', {
        provider: PROVIDER,
      });
    }
    const op: Operation = { channel: 'callback', idTokenRequired: true };
    const run = await this.#operation(options, op, hybrid);
    try {
      const result = await run.oidc.authorizationCodeGrant(
        run.config,
        callbackURL(grant, hybrid),
        {
          expectedState: grant.callback.state ?? facts.state,
          expectedNonce: facts.nonce,
          idTokenExpected: true,
          ...(grant.codeVerifier === undefined ? {} : { pkceCodeVerifier: grant.codeVerifier }),
        },
        grant.extraParams ?? {},
      );
      const tokenSet = this.#answer(op);
      const claims = { ...result.claims() };
      checkIdTokenExtras(options, tokenSet.idToken ?? '', 'token response', { accessToken: tokenSet.accessToken, code: grant.code });
      if (front && (front['sub'] !== claims['sub'] || front['iss'] !== claims['iss'])) {
        throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, 'token response', 'it is about another user (sub) than the id_token of the callback');
      }
      return { tokenSet, claims };
    } catch (error) {
      throw this.#translate(run.oidc, error, op, options);
    } finally {
      run.release();
    }
  }

  /** RFC 6749 §6 refresh; a refreshed id_token must be valid and about the same user (OpenID Connect §12.2). */
  async refresh(options: CnblogsOptions, grant: RefreshGrant, extraParams: Record<string, string>): Promise<TokenSet> {
    const op: Operation = { channel: 'refresh response', idTokenRequired: false };
    const run = await this.#operation(options, op);
    try {
      await run.oidc.refreshTokenGrant(run.config, grant.refreshToken, { ...grant.extraParams, ...extraParams });
      const tokenSet = this.#answer(op);
      if (tokenSet.idToken !== undefined) {
        const claims = checkIdTokenExtras(options, tokenSet.idToken, 'refresh response', { accessToken: tokenSet.accessToken });
        const before = subjectOf(grant.previous.idToken);
        if (before !== undefined && claims.sub !== before) {
          throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, 'refresh response', 'it is about another user (sub) than the one who logged in');
        }
      }
      return tokenSet;
    } catch (error) {
      throw this.#translate(run.oidc, error, op, options);
    } finally {
      run.release();
    }
  }

  #answer(op: Operation): TokenSet {
    if (!op.tokenSet) throw new OAuthKeeperError(ErrorCodes.PROVIDER_ERROR, 'The cnblogs token answer was not read.', { provider: PROVIDER });
    return op.tokenSet;
  }

  /**
   * One openid-client Configuration per operation (cheap: no network), so that its fetch can
   * tell this operation's requests apart; discovery and keys are shared through the cache.
   */
  async #operation(options: CnblogsOptions, op?: Operation, hybrid = false): Promise<{ oidc: Oidc; config: OpenidClient.Configuration; release: () => void }> {
    const oidc = await openidClient();
    const discovered = await this.cache.discovered(options);
    const http = httpOptionsOf(options);
    if (op) await discovered.jwks.ensure(http);
    const config = new oidc.Configuration(
      discovered.server,
      options.clientID,
      { client_secret: options.clientSecret ?? '', [oidc.clockTolerance]: options.clockToleranceSeconds ?? 60 },
      oidc.ClientSecretPost(options.clientSecret ?? ''),
    );
    config[oidc.customFetch] = this.#fetch(options, discovered, http, op);
    // Our HTTP layer times out first, with its own message; openid-client's limit is a backstop.
    config.timeout = Math.ceil((options.timeoutMs ?? 10_000) / 1000) + 1;
    if (discovered.insecure) oidc.allowInsecureRequests(config);
    oidc.enableNonRepudiationChecks(config);
    if (hybrid) oidc.useCodeIdTokenResponseType(config);
    const handed = discovered.jwks.forOperation(options.jwksCooldownSeconds ?? 30);
    if (handed) oidc.setJwksCache(config, handed);
    return { oidc, config, release: () => discovered.jwks.adopt(oidc.getJwksCache(config), handed?.uat) };
  }

  #fetch(options: CnblogsOptions, discovered: Discovered & { jwks: JwksMemo }, http: HttpOptions, op: Operation | undefined): OpenidClient.CustomFetch {
    const name = options.name ?? PROVIDER;
    const isToken = (request: { url: string; method: string }) => request.method === 'POST' && sameEndpoint(request.url, discovered.metadata.tokenEndpoint);
    return keeperFetch(http, {
      request(request) {
        if (op && isToken(request)) op.channel = op.channel === 'callback' ? 'token response' : op.channel;
      },
      failure(request, error) {
        return isToken(request) ? tokenTransportError(name, error) : jwksUnavailable(error);
      },
      response(request, response) {
        if (!isToken(request)) {
          if (sameEndpoint(request.url, discovered.metadata.jwksUri) && response.status !== 200) throw jwksUnavailable(undefined, response.status);
          return;
        }
        // Our reading first: typed errors, Retry-After, hostile values refused; only then openid-client's checks.
        const tokenSet = readTokenResponse({ provider: name }, response.status, response.text, response.headers);
        if (op?.idTokenRequired && tokenSet.idToken === undefined) {
          throw idTokenError(ErrorCodes.ID_TOKEN_INVALID, 'token response', 'the token response carries no id_token although the scope includes openid');
        }
        if (op) op.tokenSet = tokenSet;
      },
    });
  }

  #translate(oidc: Oidc, error: unknown, op: Operation, options: CnblogsOptions): OAuthKeeperError {
    const ours = findCause(error, OAuthKeeperError);
    if (ours) return ours;
    const transport = findCause(error, TransportError);
    if (transport) return jwksUnavailable(error);
    if (error instanceof oidc.ClientError) {
      const failure = idTokenFailure(error, op.channel);
      if (failure) return failure;
      if (op.tokenSet && /token_type|"response" body/.test(`${error.message} ${(error.cause as Error | undefined)?.message ?? ''}`)) {
        return new OAuthKeeperError(ErrorCodes.TOKEN_RESPONSE_MALFORMED, `The ${options.name ?? PROVIDER} token endpoint's answer is not a usable token response (${error.code ?? error.message}).`, {
          provider: PROVIDER,
          cause: error,
        });
      }
    }
    return new OAuthKeeperError(
      ErrorCodes.PROVIDER_ERROR,
      `The cnblogs ${op.channel} could not be used: ${error instanceof oidc.ClientError ? `${error.message} (${error.code ?? 'no code'})` : 'see error.cause'}.`,
      { provider: PROVIDER, status: op.channel === 'callback' ? 400 : 502, cause: error },
    );
  }
}
