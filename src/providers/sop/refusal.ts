/**
 * Gateway refusals (`code` other than 10000): what one says, read defensively, and the
 * typed error naming its fix. An unsigned answer is never trusted, but a gateway that
 * does not sign its refusals would otherwise leave every configuration mistake reported
 * as "check platformPublicKey"; so of an unsigned refusal exactly its `code`, `sub_code`
 * and (scrubbed) `msg` / `sub_msg` are read — for the message, never for a decision that
 * costs a token, and never any token data.
 */
import { ErrorCodes, OAuthKeeperError } from '../../errors.js';
import { nodeText } from './response-node.js';

/** Gateway `code` of a successful answer (auth-service failures use it too, with `error`). */
export const SUCCESS_CODE = '10000';

export interface GatewayRefusal {
  /** The gateway code (`40002`), when it is a number. */
  code?: string;
  /** The sub-code (`isv.invalid-signature`), when it is a plain dotted name. */
  subCode?: string;
  /** The platform's words, scrubbed (see {@link scrubGatewayText}). */
  msg?: string;
  subMsg?: string;
}

const CODE = /^\d{1,8}$/;
const SUB_CODE = /^[A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+){0,5}$/;
const MAX_TEXT = 120;
/** Runs that could be a token or a signature: long, with a digit in them. */
const TOKEN_LIKE = /[A-Za-z0-9+/=_-]{16,}/g;

/**
 * A platform message fit for an error message: printable, on one line, at most 120
 * characters, every occurrence of `secrets` and every token-like run masked.
 */
export function scrubGatewayText(value: unknown, secrets: ReadonlyArray<string | undefined> = []): string | undefined {
  let text = nodeText(value);
  if (text === undefined) return undefined;
  for (const secret of secrets) if (secret !== undefined && secret.length >= 8) text = text.split(secret).join('***');
  text = text
    .replace(/[\p{C}\p{Zl}\p{Zp}"\\`<>]/gu, ' ')
    .replace(TOKEN_LIKE, (run) => (/\d/.test(run) ? '***' : run))
    .replace(/\s+/g, ' ')
    .trim();
  if (text.length > MAX_TEXT) text = `${text.slice(0, MAX_TEXT)}…`;
  return text === '' ? undefined : text;
}

/**
 * The refusal a node holds — a `sub_code`, or a `code` other than 10000 — or `undefined`
 * for a node that is none. Only `code`, `sub_code`, `msg` and `sub_msg` are looked at.
 */
export function gatewayRefusalOf(node: Record<string, unknown>, secrets: ReadonlyArray<string | undefined> = []): GatewayRefusal | undefined {
  const code = nodeText(node['code']);
  const subCode = nodeText(node['sub_code']);
  if (subCode === undefined && (code === undefined || code === SUCCESS_CODE)) return undefined;
  const msg = scrubGatewayText(node['msg'], secrets);
  const subMsg = scrubGatewayText(node['sub_msg'], secrets);
  return {
    ...(code !== undefined && CODE.test(code) ? { code } : {}),
    ...(subCode !== undefined && SUB_CODE.test(subCode) ? { subCode } : {}),
    ...(msg === undefined ? {} : { msg }),
    ...(subMsg === undefined ? {} : { subMsg }),
  };
}

/** True for a refusal that may pass on a later try: the platform's own trouble (`20000`, `isp.*`). */
export function isTransientRefusal(refusal: GatewayRefusal): boolean {
  return refusal.code === '20000' || (refusal.subCode?.startsWith('isp.') ?? false);
}

const CLOCK = " check this server's clock (NTP): the timestamp is sent in China time (UTC+8) and the platform refuses it when more than 300 s off.";
const SIGNATURE =
  " check that privateKey is the app's private key whose public key is registered on the platform for clientID (app_id), and that signType matches the app's setting there.";

/** The fix of each well-known sub-code; the `isv.missing-` prefix has one of its own below. */
const HINTS: Readonly<Record<string, string>> = {
  'isv.invalid-signature': ` The platform could not verify this app's request signature:${SIGNATURE}`,
  'isv.missing-signature': ` The gateway received no request signature:${SIGNATURE}`,
  'isv.invalid-signature-type': " Check signType: it must be the app's setting on the platform (RSA2 or RSA).",
  'isv.missing-signature-type': " Check signType: it must be the app's setting on the platform (RSA2 or RSA).",
  'isv.invalid-timestamp': ` The platform refused the request timestamp:${CLOCK}`,
  'isv.missing-timestamp': ` The gateway received no timestamp:${CLOCK}`,
  'isv.invalid-app-id': ' Check clientID: it must be the app_id the platform issued to this app (and the app must be enabled there).',
  'isv.missing-app-id': ' Check clientID: it must be the app_id the platform issued to this app.',
  'isv.invalid-method': ' The gateway does not offer this method (and version): check the method name and gatewayURL.',
  'isv.invalid-format': ' Check gatewayURL: it must be the SOP gateway itself (format=json is what every SOP gateway accepts).',
  'isv.invalid-charset': ' Check gatewayURL: it must be the SOP gateway itself (charset=utf-8 is what every SOP gateway accepts).',
  'isv.invalid-parameter': ' Check the parameters: the gateway found one of them invalid (for a business call, its JSON body).',
  'isv.route-no-permissions': " The platform does not let this app call this method: grant it to the app in the platform's console.",
  'isv.access-forbidden': " The platform does not let this app call this method: grant it to the app in the platform's console.",
  'isv.ip-forbidden': " The platform refused this server's IP address: add it to the app's allowed IPs in the platform's console.",
  'aop.invalid-app-auth-token': " The gateway says the user's app_auth_token is not valid; only a signed answer saying so starts a refresh.",
  'aop.app-auth-token-time-out': " The gateway says the user's app_auth_token timed out; only a signed answer saying so starts a refresh.",
};

/** A readable next step for a refusal. */
export function refusalHint(refusal: GatewayRefusal): string {
  const subCode = refusal.subCode;
  if (subCode !== undefined && HINTS[subCode] !== undefined) return HINTS[subCode];
  if (subCode?.startsWith('isv.missing-')) {
    return ` The gateway found the required parameter ${subCode.slice('isv.missing-'.length)} missing: check the parameters this call is given, and that gatewayURL is the gateway itself (a proxy in between must pass the form body on unchanged).`;
  }
  if (isTransientRefusal(refusal)) return ' The platform reported a problem of its own; it may work on a later try.';
  return '';
}

/** What a refused call was for: the token grant fails as a token endpoint would, a business call as an upstream API. */
export type RefusalPurpose = 'token' | 'api';

/**
 * The typed error of a refusal of `method`. `signed: false` marks one read from an
 * unsigned answer: it names what the gateway said, and nothing in it is a grant verdict.
 */
export function gatewayRefusalError(
  provider: string,
  purpose: RefusalPurpose,
  method: string,
  refusal: GatewayRefusal,
  signed: boolean,
  requestId?: unknown,
): OAuthKeeperError {
  const { code, subCode } = refusal;
  const said = refusal.subMsg ?? refusal.msg;
  const what =
    `The ${provider} gateway refused ${method} with code ${code ?? '(unreadable)'}${subCode === undefined ? '' : ` (${subCode})`}` +
    `${said === undefined ? '' : `: "${said}"`}${signed ? '' : ', in an unsigned answer of which only that was read'}.`;
  return new OAuthKeeperError(purpose === 'token' ? ErrorCodes.TOKEN_ENDPOINT_FAILED : ErrorCodes.API_UPSTREAM_FAILED, what + refusalHint(refusal), {
    provider,
    transient: isTransientRefusal(refusal),
    ...(subCode === undefined ? {} : { oauthError: subCode }),
    details: { method, ...refusal, signed, ...(signed && requestId !== undefined ? { requestId } : {}) },
  });
}
