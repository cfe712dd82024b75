/**
 * The API binding: business calls are signed gateway calls carrying `app_auth_token`,
 * and the answer must be verified over the raw text of its response node before it is used.
 */
import { ErrorCodes, OAuthKeeperError } from '../../errors.js';
import { isRecord, parseJson } from '../../lib/http.js';
import type { TokenSet } from '../../lib/token-set.js';
import type { ApiSpec } from '../../provider/define.js';
import type { ApiRawResponse, ApiRequest, ApiResponseHead } from '../../provider/types.js';
import { GATEWAY_HEADERS, METHOD_NAME, readGatewayAnswer, sopGatewayParameters } from './gateway.js';
import { sopName, type SopOptions } from './options.js';
import { nodeText } from './response-node.js';

/** `code` 20001 with one of these `sub_code`s is this provider's "401". */
const TOKEN_REJECTED_SUB_CODES: ReadonlySet<string> = new Set(['aop.invalid-app-auth-token', 'aop.app-auth-token-time-out']);

function apiMethodOf(url: URL): string | undefined {
  const segments = url.pathname.split('/').filter((s) => s.length > 0);
  const last = segments[segments.length - 1];
  if (last === undefined) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(last);
  } catch {
    return undefined;
  }
  return METHOD_NAME.test(name) ? name : undefined;
}

/**
 * A business call `POST <api base>/<method>` with the JSON business parameters as its
 * body becomes the signed gateway form: `method` from the last path segment, the body as
 * `biz_content` (`{}` when empty), `version` from the `version` query parameter (default
 * 1.0), and the user's token as `app_auth_token`.
 */
function attach(request: ApiRequest, token: TokenSet, options: SopOptions): ApiRequest {
  const method = apiMethodOf(request.url);
  if (method === undefined) {
    throw new OAuthKeeperError(
      ErrorCodes.API_REQUEST_INVALID,
      'A sop API call names its gateway method as the last path segment, e.g. POST /api/sop/goods.get.',
      { provider: sopName(options) },
    );
  }
  const bodyText = request.body && request.body.length > 0 ? request.body.toString('utf8') : '{}';
  if (!isRecord(parseJson(bodyText))) {
    throw new OAuthKeeperError(
      ErrorCodes.API_REQUEST_INVALID,
      `The body of a sop API call is its biz_content and must be a JSON object (${method}).`,
      { provider: sopName(options) },
    );
  }
  const version = request.url.searchParams.get('version') ?? undefined;
  const params = sopGatewayParameters(options, method, bodyText, {
    appAuthToken: token.accessToken,
    ...(version ? { version } : {}),
  });
  const headers = new Headers(GATEWAY_HEADERS);
  return { method: 'POST', url: new URL(options.gatewayURL), headers, body: Buffer.from(new URLSearchParams(params).toString(), 'utf8') };
}

/** The form a request posts to the gateway, when it is an attached (signed) one. */
function gatewayForm(request: ApiRequest): URLSearchParams | undefined {
  const type = request.headers.get('content-type') ?? '';
  if (!/x-www-form-urlencoded/i.test(type) || !request.body) return undefined;
  const form = new URLSearchParams(request.body.toString('utf8'));
  return form.get('method') !== null && form.has('sign') ? form : undefined;
}

/**
 * Verifies a business answer over the raw text of its response node and hands the caller
 * that node (unwrapped) as JSON; the HTTP status is kept. Anything unverifiable is refused
 * (an unsigned refusal as the refusal it says it is, with the token masked out of it).
 */
function readResponse(response: ApiRawResponse, request: ApiRequest, options: SopOptions): ApiRawResponse {
  const form = gatewayForm(request);
  const method = form?.get('method') ?? apiMethodOf(request.url);
  if (method === undefined || method === null) {
    throw new OAuthKeeperError(ErrorCodes.API_REQUEST_INVALID, 'The sop API answer cannot be read: the request names no gateway method.', {
      provider: sopName(options),
    });
  }
  const answer = { status: response.status, text: response.body.toString('utf8') };
  const { raw } = readGatewayAnswer(sopName(options), 'api', options, method, answer, [form?.get('app_auth_token') ?? undefined]);
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  headers.delete('content-encoding');
  headers.set('content-type', 'application/json; charset=utf-8');
  return { status: response.status, headers, body: Buffer.from(raw, 'utf8') };
}

/** `code` 20001 with `aop.invalid-app-auth-token` or `aop.app-auth-token-time-out`. */
function isTokenRejected(response: ApiResponseHead): boolean {
  const body = response.body;
  if (!isRecord(body)) return false;
  let node: unknown = body;
  if (body['code'] === undefined) {
    const key = Object.keys(body).find((k) => k.endsWith('_response'));
    node = key === undefined ? undefined : body[key];
  }
  if (!isRecord(node)) return false;
  const subCode = nodeText(node['sub_code']);
  return nodeText(node['code']) === '20001' && subCode !== undefined && TOKEN_REJECTED_SUB_CODES.has(subCode);
}

export const sopApi: ApiSpec<SopOptions> = {
  baseURL: (options) => options.gatewayURL,
  attach,
  isTokenRejected,
  readResponse,
  // The signature over the user's call is not the caller's to see; app_auth_token is the access token.
  secretParameters: ['sign', 'app_auth_token'],
};
