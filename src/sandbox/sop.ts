/**
 * A sandbox SOP deployment: the auth service's pages and the signed gateway on one
 * server, speaking the wire protocol of SOP's app authorization (应用授权):
 *
 * - `GET /oauth2/appToAppAuth?app_id&redirect_uri` — the login page (or, with
 *   `autoApprove`, straight back); it posts to `POST /oauth2/authorize`, which answers
 *   `302 redirect_uri?code=<32 hex>&app_id=<app_id>` (or `?error=...`), keeping
 *   redirect_uri's own query as it was;
 * - `POST /` — the gateway (form-urlencoded; a GET query or a JSON body are accepted too,
 *   as SOP's gateway does). `/gateway` is an alias.
 *
 * The request verifier below is written from the protocol text, independently of the
 * strategy's signer, so a test passing here means the two agree on the specification,
 * not merely with each other.
 */
import { createSign, createVerify, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { SandboxEngine, type Fault, type SandboxSettings, type SandboxUser } from './engine.js';
import { listen, loginPage, reply, withFault, type RunningSandbox, type SandboxReply, type SandboxRequest, type SandboxServerOptions } from './server.js';

export interface SopSandboxApp {
  appId: string;
  /** The app's RSA public key (SPKI PEM or KeyObject): request signatures are verified with it. */
  publicKey: string | KeyObject;
}

/** SOP-specific knobs; change them while the sandbox runs (`sandbox.settings.x = ...`). */
export interface SopSandboxSettings {
  /**
   * Answer `expires_in: -1, re_expires_in: -3` ("never expires"), as SOP does. Default true.
   * With false, the engine's real lifetimes are sent.
   */
  negativeLifetimes: boolean;
  /** Largest accepted distance between `timestamp` and China time now, in seconds. Default 300. */
  timestampToleranceSeconds: number;
  /** Test aid: the exact text sent (and signed) as each `open.auth.token.app` node, from the node the sandbox would send. Default null. */
  tokenNodeText: ((node: Record<string, unknown>) => string) | null;
  /** Send gateway refusals (any `code` but 10000) without `sign`, as gateways that sign only successes do. Default false. */
  unsignedRefusals: boolean;
}

/** A gateway fault: the engine's, plus answers only a signed gateway can give. */
export interface SopGatewayFault extends Fault {
  /** Answer this node (e.g. `{ code: '40002', sub_code: 'isv.invalid-timestamp' }`) without handling the call: nothing is redeemed or rotated. */
  node?: Record<string, unknown>;
  /** Send the answer without `sign`. */
  unsigned?: boolean;
}

export interface SopSandboxOptions extends Partial<SandboxSettings>, Partial<SopSandboxSettings>, SandboxServerOptions {
  /** The registered apps. */
  apps: SopSandboxApp[];
  users?: SandboxUser[];
  /** Display name on the login page. Default "SOP open platform". */
  title?: string;
}

export interface SopGatewayCounters {
  /** Every gateway request. */
  requests: number;
  /** Requests refused because their signature did not verify. */
  badSignatures: number;
  /** Requests refused with a gateway error (any code other than 10000). */
  gatewayErrors: number;
}

export interface RunningSopSandbox extends RunningSandbox {
  /** The platform's public key (SPKI PEM): configure it as the strategy's `platformPublicKey`. */
  readonly platformPublicKey: string;
  readonly settings: SopSandboxSettings;
  readonly gatewayCounters: SopGatewayCounters;
  /** The parameters of the last gateway request, as received (decoded form values). */
  readonly lastGatewayRequest: Readonly<Record<string, string>> | undefined;
  /** The exact body of the last gateway answer. */
  readonly lastGatewayResponse: string | undefined;
  /**
   * Expires every app_auth_token now; later business calls with them get
   * `20001 aop.app-auth-token-time-out` (rather than `aop.invalid-app-auth-token`).
   */
  expireAppAuthTokens(): void;
  /** Queues a fault for the next gateway call(s) of the token method (`token`) or of business methods (`api`). */
  injectGatewayFault(target: 'token' | 'api', fault: SopGatewayFault): void;
}

const TOKEN_METHOD = 'open.auth.token.app';
const TEN_YEARS = 10 * 365 * 24 * 3600;

const GATEWAY_MESSAGES: Record<string, string> = {
  '10000': 'Success', '20000': 'Service Currently Unavailable', '20001': 'Insufficient Token Permissions', '40001': 'Missing Required Arguments',
  '40002': 'Invalid Arguments', '40004': 'Business Failed', '40006': 'Insufficient Permissions',
};

/** `yyyy-MM-dd HH:mm:ss` read as China time (UTC+8); undefined when it is not that shape. */
function parseChinaTime(value: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(value);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const instant = Date.UTC(y, mo - 1, d, h - 8, mi, s);
  // Reject calendar overflow (2024-02-31 and the like).
  const check = new Date(instant + 8 * 3600_000);
  if (check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) return undefined;
  return instant;
}

/**
 * The gateway's check of a request signature, from the protocol text: the content is every
 * received parameter except `sign` — the server signs what it receives, so empty values are
 * included — ordered by parameter name in ASCII, each written `name=value` with its decoded
 * value, joined by `&`; the signature is Base64 of RSA over the UTF-8 bytes, SHA-256 for
 * `RSA2` and SHA-1 for `RSA`.
 */
function gatewaySignatureValid(received: Record<string, string>, publicKey: string | KeyObject): boolean {
  const names = Object.keys(received)
    .filter((name) => name !== 'sign')
    .sort((a, b) => Buffer.compare(Buffer.from(a, 'ascii'), Buffer.from(b, 'ascii')));
  let content = '';
  for (const name of names) content += (content === '' ? '' : '&') + name + '=' + received[name];
  const algorithm = received['sign_type'] === 'RSA' ? 'RSA-SHA1' : 'RSA-SHA256';
  const verifier = createVerify(algorithm);
  verifier.update(Buffer.from(content, 'utf8'));
  try {
    return verifier.verify(publicKey, received['sign'] ?? '', 'base64');
  } catch {
    return false;
  }
}

function platformSignature(text: string, privateKey: KeyObject, signType: string | undefined): string {
  const signer = createSign(signType === 'RSA' ? 'RSA-SHA1' : 'RSA-SHA256');
  signer.update(Buffer.from(text, 'utf8'));
  return signer.sign(privateKey, 'base64');
}

/** Appends parameters to a URI without re-encoding its own query (it may carry the client's state). */
function appendQuery(uri: string, extra: Record<string, string>): string {
  const hash = uri.indexOf('#');
  const base = hash >= 0 ? uri.slice(0, hash) : uri;
  const query = new URLSearchParams(extra).toString();
  const joiner = !base.includes('?') ? '?' : base.endsWith('?') || base.endsWith('&') ? '' : '&';
  return base + joiner + query;
}

function isHttpUrl(value: string | undefined): value is string {
  if (value === undefined) return false;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

interface GatewayAnswer {
  /** `undefined` → `error_response`. */
  method: string | undefined;
  node: Record<string, unknown>;
}

type BusinessHandler = (context: { appId: string; userId: string; biz: Record<string, unknown> }) => Record<string, unknown>;

/** Starts a sandbox SOP deployment (auth pages + gateway on one server). */
export async function startSopSandbox(options: SopSandboxOptions): Promise<RunningSopSandbox> {
  if (!options || !Array.isArray(options.apps) || options.apps.length === 0) {
    throw new Error('startSopSandbox needs apps: [{ appId, publicKey }] (the public keys it verifies request signatures with).');
  }
  const engine = new SandboxEngine({
    ...options,
    // The wire says "never expires"; keep the engine's own clock out of the way unless asked.
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? TEN_YEARS,
    refreshTokenTtlSeconds: options.refreshTokenTtlSeconds === undefined ? null : options.refreshTokenTtlSeconds,
    clients: options.apps.map((app) => ({ clientId: app.appId, clientSecret: randomUUID() })),
    ...(options.users ? { users: options.users } : {}),
  });
  const apps = new Map(options.apps.map((app) => [app.appId, app]));
  const title = options.title ?? 'SOP open platform';
  const settings: SopSandboxSettings = {
    negativeLifetimes: options.negativeLifetimes ?? true,
    timestampToleranceSeconds: options.timestampToleranceSeconds ?? 300,
    tokenNodeText: options.tokenNodeText ?? null,
    unsignedRefusals: options.unsignedRefusals ?? false,
  };
  const gatewayCounters: SopGatewayCounters = { requests: 0, badSignatures: 0, gatewayErrors: 0 };
  const platform = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const platformPublicKey = platform.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  /** Tokens this sandbox issued, to tell an expired token from an unknown one. */
  const issued = new Map<string, { expiresAt: number }>();
  let lastGatewayRequest: Record<string, string> | undefined;
  let lastGatewayResponse: string | undefined;

  // --- auth service -------------------------------------------------------

  const authorize = (req: SandboxRequest): SandboxReply => {
    const p = req.params;
    const appId = p['app_id'];
    const redirectUri = p['redirect_uri'];
    if (appId === undefined || !apps.has(appId)) return reply.html(400, '<h1>error</h1><p>Unknown app_id.</p>');
    if (!isHttpUrl(redirectUri)) return reply.html(400, '<h1>error</h1><p>redirect_uri is missing or not an absolute URL.</p>');
    let user = engine.settings.autoApprove ? engine.users[0] : undefined;
    if (!user) {
      const hidden = { app_id: appId, redirect_uri: redirectUri };
      if (req.method !== 'POST' || p['decision'] === undefined) {
        engine.counters.authorize += 1;
        return loginPage(title, '/oauth2/authorize', hidden, engine.users);
      }
      if (p['decision'] === 'deny') {
        return reply.redirect(appendQuery(redirectUri, { error: 'access_denied', error_description: 'The user denied the authorization' }));
      }
      user = engine.login(p['username'], p['password']);
      if (!user) return loginPage(title, '/oauth2/authorize', hidden, engine.users, true);
    } else {
      engine.counters.authorize += 1;
    }
    const code = engine.issueCode({ clientId: appId, userId: user.id, scope: '', extra: {} }, redirectUri, undefined, 32);
    return reply.redirect(appendQuery(redirectUri, { code, app_id: appId }));
  };

  // --- gateway --------------------------------------------------------------

  const gatewayError = (method: string | undefined, code: string, subCode: string, subMsg: string): GatewayAnswer => ({
    method,
    node: { code, msg: GATEWAY_MESSAGES[code] ?? 'Error', sub_code: subCode, sub_msg: subMsg },
  });

  const remember = (tokens: { accessToken: string; expiresIn: number }): void => {
    issued.set(tokens.accessToken, { expiresAt: Date.now() + tokens.expiresIn * 1000 });
  };

  const tokenMethod = (appId: string, biz: Record<string, unknown>): GatewayAnswer => {
    engine.counters.token += 1;
    const authFailure = (error: string, description: string): GatewayAnswer => ({
      method: TOKEN_METHOD,
      node: { code: '10000', msg: 'Success', error, error_description: description },
    });
    let result;
    if (biz['grant_type'] === 'authorization_code') {
      engine.counters.authorizationCode += 1;
      if (typeof biz['code'] !== 'string' || biz['code'] === '') return authFailure('invalid_request', 'code is required');
      result = engine.redeemCode(biz['code'], appId, undefined);
      if ('error' in result) return authFailure('invalid_grant', result.description);
      result = engine.issueTokens(result);
    } else if (biz['grant_type'] === 'refresh_token') {
      engine.counters.refresh += 1;
      if (typeof biz['refresh_token'] !== 'string' || biz['refresh_token'] === '') return authFailure('invalid_request', 'refresh_token is required');
      result = engine.refresh(biz['refresh_token'], appId);
      if ('error' in result) return authFailure(/expired/.test(result.description) ? 'expired_token' : 'invalid_grant', result.description);
    } else {
      return authFailure('invalid_request', 'grant_type must be authorization_code or refresh_token');
    }
    remember(result);
    const negative = settings.negativeLifetimes;
    return {
      method: TOKEN_METHOD,
      node: {
        code: '10000',
        msg: 'Success',
        app_auth_token: result.accessToken,
        app_refresh_token: result.refreshToken,
        user_id: result.grant.userId,
        expires_in: negative ? -1 : result.expiresIn,
        re_expires_in: negative ? -3 : (result.refreshExpiresIn ?? -3),
      },
    };
  };

  const business: Record<string, BusinessHandler> = {
    'goods.get': ({ userId, biz }) => ({
      code: '10000',
      msg: 'Success',
      name: typeof biz['goods_name'] === 'string' ? biz['goods_name'] : 'iphone6',
      price: '5999.00',
      owner_user_id: userId,
    }),
    'user.info.get': ({ userId }) => {
      const user = engine.userById(userId);
      return { code: '10000', msg: 'Success', user_id: userId, nick_name: user?.name, username: user?.username };
    },
  };

  /** Validates a gateway request the way SOP's gateway does, then dispatches it. */
  const handleGateway = (p: Record<string, string>): GatewayAnswer => {
    const method = p['method'];
    if (method === undefined || method === '') return gatewayError(undefined, '40001', 'isv.missing-method', 'Missing method');
    if (!p['version']) return gatewayError(method, '40001', 'isv.missing-version', 'Missing version');
    const appId = p['app_id'];
    if (!appId) return gatewayError(method, '40001', 'isv.missing-app-id', 'Missing app_id');
    const app = apps.get(appId);
    if (!app) return gatewayError(method, '40002', 'isv.invalid-app-id', 'Invalid app_id');
    if (p['version'] !== '1.0' || (method !== TOKEN_METHOD && business[method] === undefined)) {
      return gatewayError(method, '40002', 'isv.invalid-method', 'No such method and version');
    }
    if (p['format'] !== undefined && p['format'].toLowerCase() !== 'json') return gatewayError(method, '40002', 'isv.invalid-format', 'Invalid format');
    if (!p['charset']) return gatewayError(method, '40001', 'isv.missing-charset', 'Missing charset');
    if (p['charset'].toLowerCase() !== 'utf-8') return gatewayError(method, '40002', 'isv.invalid-charset', 'Invalid charset');
    if (!p['sign_type']) return gatewayError(method, '40001', 'isv.missing-signature-type', 'Missing sign_type');
    if (p['sign_type'] !== 'RSA2' && p['sign_type'] !== 'RSA') return gatewayError(method, '40002', 'isv.invalid-signature-type', 'Invalid sign_type');
    if (!p['timestamp']) return gatewayError(method, '40001', 'isv.missing-timestamp', 'Missing timestamp');
    const sent = parseChinaTime(p['timestamp']);
    if (sent === undefined || Math.abs(Date.now() - sent) > settings.timestampToleranceSeconds * 1000) {
      return gatewayError(method, '40002', 'isv.invalid-timestamp', 'Invalid timestamp');
    }
    if (!p['sign']) return gatewayError(method, '40001', 'isv.missing-signature', 'Missing sign');
    if (!gatewaySignatureValid(p, app.publicKey)) {
      gatewayCounters.badSignatures += 1;
      return gatewayError(method, '40002', 'isv.invalid-signature', 'Invalid signature');
    }
    let biz: Record<string, unknown> = {};
    if (p['biz_content'] !== undefined && p['biz_content'] !== '') {
      let parsed: unknown;
      try {
        parsed = JSON.parse(p['biz_content']);
      } catch {
        parsed = undefined;
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        return gatewayError(method, '40002', 'isv.invalid-parameter', 'biz_content is not a JSON object');
      }
      biz = parsed as Record<string, unknown>;
    }
    if (method === TOKEN_METHOD) return tokenMethod(appId, biz);

    engine.counters.api += 1;
    const token = p['app_auth_token'];
    const grant = engine.verifyAccessToken(token);
    if (!token || !grant) {
      const known = token === undefined ? undefined : issued.get(token);
      const timedOut = known !== undefined && known.expiresAt <= Date.now();
      return timedOut
        ? gatewayError(method, '20001', 'aop.app-auth-token-time-out', 'app_auth_token has expired')
        : gatewayError(method, '20001', 'aop.invalid-app-auth-token', 'Invalid app_auth_token');
    }
    if (grant.clientId !== appId) return gatewayError(method, '20001', 'aop.invalid-app-auth-token', 'app_auth_token belongs to another app');
    return { method, node: business[method]!({ appId, userId: grant.userId, biz }) };
  };

  /** `{"<method>_response":<node>,"sign":"..."}`, signed over the node's exact text (badly, or not at all, as `fault` says). */
  const signedAnswer = (answer: GatewayAnswer, signType: string | undefined, fault: SopGatewayFault | undefined): SandboxReply => {
    const nodeName = answer.method === undefined ? 'error_response' : `${answer.method.replace(/\./g, '_')}_response`;
    const node = { request_id: randomUUID(), ...answer.node };
    const nodeText = answer.method === TOKEN_METHOD && settings.tokenNodeText ? settings.tokenNodeText(node) : JSON.stringify(node);
    const signed = fault?.badSignature ? `${nodeText} ` : nodeText;
    const unsigned = fault?.unsigned === true || (settings.unsignedRefusals && answer.node['code'] !== '10000');
    const sign = unsigned ? '' : `,"sign":${JSON.stringify(platformSignature(signed, platform.privateKey, signType))}`;
    return { status: 200, headers: { 'content-type': 'application/json;charset=UTF-8' }, body: `{${JSON.stringify(nodeName)}:${nodeText}${sign}}` };
  };

  const gateway = async (req: SandboxRequest): Promise<SandboxReply> => {
    gatewayCounters.requests += 1;
    const params = { ...req.params };
    if (params['method'] === TOKEN_METHOD && /"grant_type"\s*:\s*"authorization_code"/.test(params['biz_content'] ?? '')) {
      await engine.delayCodeExchange();
    }
    lastGatewayRequest = params;
    // The engine keeps a queued fault as it was given: a SopGatewayFault stays one.
    const fault: SopGatewayFault | undefined = engine.takeFault(params['method'] === TOKEN_METHOD ? 'token' : 'api');
    const out = await withFault(fault, () => {
      const answer = fault?.node ? { method: params['method'] || undefined, node: fault.node } : handleGateway(params);
      if (answer.node['code'] !== '10000') gatewayCounters.gatewayErrors += 1;
      return signedAnswer(answer, params['sign_type'], fault);
    });
    lastGatewayResponse = out.body;
    return out;
  };

  const running = await listen(
    engine,
    (req) => {
      const path = req.url.pathname;
      if ((path === '/oauth2/appToAppAuth' || path === '/oauth2/authorize') && (req.method === 'GET' || req.method === 'POST')) {
        return authorize(req);
      }
      if ((path === '/' || path === '/gateway') && (req.method === 'POST' || (req.method === 'GET' && req.url.search !== ''))) {
        return gateway(req);
      }
      return undefined;
    },
    options,
  );

  return {
    url: running.url,
    port: running.port,
    engine,
    close: () => running.close(),
    platformPublicKey,
    settings,
    gatewayCounters,
    get lastGatewayRequest() {
      return lastGatewayRequest === undefined ? undefined : Object.freeze({ ...lastGatewayRequest });
    },
    get lastGatewayResponse() {
      return lastGatewayResponse;
    },
    expireAppAuthTokens() {
      engine.expireAccessTokens();
      for (const entry of issued.values()) entry.expiresAt = 0;
    },
    injectGatewayFault: (target, fault) => engine.injectFault(target, fault),
  };
}
