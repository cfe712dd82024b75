/**
 * One signed gateway call: its parameters, the post, reading the answer (HTTP status,
 * then signature), and the typed errors of the gateway's own failures.
 */
import { ErrorCodes, OAuthKeeperError, type ErrorCode } from '../../errors.js';
import { httpOptionsOf, httpRequest, tokenTransportError, TransportError, type HttpResponse } from '../../lib/http.js';
import { sopName, type SopOptions } from './options.js';
import { gatewayRefusalError, gatewayRefusalOf, type RefusalPurpose } from './refusal.js';
import { locateSopResponse, parseNode, verifyLocatedResponse, type VerifiedSopResponse } from './response-node.js';
import { chinaTimestamp, keysOf, signSopParameters, signTypeOf } from './signing.js';

/** A gateway method: a dotted name such as `goods.get`. */
export const METHOD_NAME = /^[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*$/;

const FORM_TYPE = 'application/x-www-form-urlencoded;charset=utf-8';

/** The headers of every gateway call: a UTF-8 form in, JSON out. */
export const GATEWAY_HEADERS: Readonly<Record<string, string>> = { 'content-type': FORM_TYPE, accept: 'application/json' };

/** The signed form parameters of one gateway call. */
export function sopGatewayParameters(
  options: SopOptions,
  method: string,
  bizContent: string,
  extra: { appAuthToken?: string; version?: string; now?: Date } = {},
): Record<string, string> {
  return signSopParameters(
    {
      app_id: options.clientID,
      method,
      format: 'json',
      charset: 'utf-8',
      sign_type: signTypeOf(options),
      timestamp: chinaTimestamp(extra.now ?? new Date()),
      version: extra.version ?? '1.0',
      app_auth_token: extra.appAuthToken,
      biz_content: bizContent,
    },
    keysOf(options).privateKey,
    signTypeOf(options),
  );
}

/** Posts signed parameters to the gateway as a form; transport failures throw TransportError. */
function postToGateway(options: SopOptions, params: Record<string, string>): Promise<HttpResponse> {
  return httpRequest({
    method: 'POST',
    url: options.gatewayURL,
    headers: { ...GATEWAY_HEADERS },
    body: new URLSearchParams(params).toString(),
    ...httpOptionsOf(options),
  });
}

// ---------------------------------------------------------------------------
// Failures of the call itself

/** What a call is for, which decides how its failures are reported. */
export type GatewayPurpose = RefusalPurpose;

interface FailureReports {
  /** The gateway could not be reached at all. */
  unreachable(provider: string, method: string, cause: TransportError): OAuthKeeperError;
  /** The gateway answered with a status other than 2xx (a real one answers every call with HTTP 200). */
  httpStatus(provider: string, method: string, status: number): OAuthKeeperError;
  /** The code of an answer that is not a gateway answer at all. */
  malformedCode: ErrorCode;
}

const FAILURES: Readonly<Record<GatewayPurpose, FailureReports>> = {
  // The code exchange and refresh (`open.auth.token.app`) fail as a token endpoint would.
  token: {
    unreachable: (provider, _method, cause) => tokenTransportError(provider, cause),
    httpStatus: (provider, _method, status) => {
      const transient = status >= 500 || status === 429;
      return new OAuthKeeperError(
        ErrorCodes.TOKEN_ENDPOINT_FAILED,
        `The ${provider} gateway answered HTTP ${status}` +
          (transient ? '; it may work on a later try.' : '. Check gatewayURL: the gateway answers every call with HTTP 200.'),
        { provider, transient, details: { status } },
      );
    },
    malformedCode: ErrorCodes.TOKEN_RESPONSE_MALFORMED,
  },
  // Business calls fail as an upstream API would.
  api: {
    unreachable: (provider, method, cause) =>
      new OAuthKeeperError(
        cause.timedOut ? ErrorCodes.API_UPSTREAM_TIMEOUT : ErrorCodes.API_UPSTREAM_FAILED,
        `The ${provider} gateway could not be reached for ${method}: ${cause.message}.`,
        { provider, cause, transient: true },
      ),
    httpStatus: (provider, method, status) =>
      new OAuthKeeperError(
        ErrorCodes.API_UPSTREAM_FAILED,
        `The ${provider} gateway answered ${method} with HTTP ${status}; its answers are always HTTP 200, so check gatewayURL.`,
        { provider, transient: status >= 500, details: { status, method } },
      ),
    malformedCode: ErrorCodes.API_UPSTREAM_FAILED,
  },
};

/**
 * Reads one gateway answer to `method`: its HTTP status must be 2xx, then its signature
 * must verify over the raw text of its response node. Returns the verified node.
 *
 * An unsigned refusal is the one exception: it still throws, but as the refusal it says
 * it is (`40002 isv.invalid-signature` names privateKey, not platformPublicKey), with only
 * its code, sub_code and scrubbed messages read; `secrets` (what the call sent) are masked
 * out of those. An unsigned success, or any badly signed answer, is a signature error.
 */
export function readGatewayAnswer(
  provider: string,
  purpose: GatewayPurpose,
  options: SopOptions,
  method: string,
  answer: { status: number; text: string },
  secrets: ReadonlyArray<string | undefined> = [],
): VerifiedSopResponse {
  const failures = FAILURES[purpose];
  if (answer.status < 200 || answer.status >= 300) throw failures.httpStatus(provider, method, answer.status);
  const verify = { signType: signTypeOf(options), provider, malformedCode: failures.malformedCode };
  const located = locateSopResponse(answer.text, method, verify);
  if (located.signature === undefined) {
    const node = parseNode(located);
    const refusal = node === undefined ? undefined : gatewayRefusalOf(node, secrets);
    if (refusal !== undefined) throw gatewayRefusalError(provider, purpose, method, refusal, false);
  }
  return verifyLocatedResponse(located, method, keysOf(options).platformPublicKey, verify);
}

/** Signs one call of `method`, posts it and reads the answer (see {@link readGatewayAnswer}). */
export async function postGatewayCall(
  provider: string,
  purpose: GatewayPurpose,
  options: SopOptions,
  method: string,
  bizContent: string,
  extra: { appAuthToken?: string; version?: string; secrets?: ReadonlyArray<string | undefined> } = {},
): Promise<VerifiedSopResponse> {
  const params = sopGatewayParameters(options, method, bizContent, extra);
  let response;
  try {
    response = await postToGateway(options, params);
  } catch (cause) {
    if (!(cause instanceof TransportError)) throw cause;
    throw FAILURES[purpose].unreachable(provider, method, cause);
  }
  return readGatewayAnswer(provider, purpose, options, method, response, [extra.appAuthToken, ...(extra.secrets ?? [])]);
}

/**
 * One signed business call, for code that calls the gateway itself rather than through
 * the API proxy: signs the request, posts it, verifies the answer and returns its
 * response node. Gateway refusals (`code` other than 10000, e.g. `20001` for a rejected
 * token) are answers and come back as the node; an unverifiable answer throws
 * RESPONSE_SIGNATURE_INVALID, an unreachable gateway API_UPSTREAM_FAILED / _TIMEOUT.
 */
export async function callSopGateway(
  options: SopOptions,
  method: string,
  bizContent: Readonly<Record<string, unknown>> | string,
  call: { appAuthToken?: string; version?: string } = {},
): Promise<Record<string, unknown>> {
  if (!METHOD_NAME.test(method)) {
    throw new OAuthKeeperError(ErrorCodes.API_REQUEST_INVALID, 'A sop gateway method is a dotted name such as "goods.get".', { provider: sopName(options) });
  }
  const bizText = typeof bizContent === 'string' ? bizContent : JSON.stringify(bizContent);
  return (await postGatewayCall(sopName(options), 'api', options, method, bizText, call)).node;
}

// ---------------------------------------------------------------------------
// Failures the gateway reports in its answer

/** Throws the typed error for a gateway-level failure (`code` other than 10000) of a verified node, if it is one. */
export function throwIfGatewayError(provider: string, method: string, node: Record<string, unknown>, secrets: ReadonlyArray<string | undefined> = []): void {
  const refusal = gatewayRefusalOf(node, secrets);
  if (refusal !== undefined) throw gatewayRefusalError(provider, 'token', method, refusal, true, node['request_id']);
}
