import { SandboxEngine, type Grant, type IssuedTokens, type SandboxClient, type SandboxSettings, type SandboxUser } from './engine.js';
import {
  bearerToken,
  listen,
  loginPage,
  reply,
  withFault,
  type RunningSandbox,
  type SandboxReply,
  type SandboxRequest,
  type SandboxServerOptions,
} from './server.js';

/** How the token endpoint shapes its answer; both can be changed while the sandbox runs. */
export interface DiWireSettings {
  /** `object` is what the platform really sends; `array` is its documented model (`[{...}]`). Default `object`. */
  tokenResponseShape: 'object' | 'array';
  /** `number` is what the platform really sends; `string` is its documented model. Default `number`. */
  expiresInType: 'number' | 'string';
  /**
   * Spring's DefaultTokenServices hands back the still-valid token of the same
   * client + user + scope instead of a new one, with a smaller `expires_in`. Default false.
   */
  reuseUnexpiredTokens: boolean;
  /**
   * Spring's InvalidTokenException puts the whole token in its message
   * (`Invalid access token: <token>`), as the platform answers; false (default) shows
   * only its first characters.
   */
  echoTokensInErrors: boolean;
}

export interface DiSandboxOptions extends Partial<SandboxSettings>, Partial<DiWireSettings>, SandboxServerOptions {
  users?: SandboxUser[];
  clients?: SandboxClient[];
  /** Scopes the clients may ask for. Default `read_cn`, `read_ep`, `read_jp`, `read_tw`. */
  scopes?: string[];
  /** Display name on the login page. Default "DI开放平台 sandbox". */
  title?: string;
}

/** One request as the sandbox received it, for asserting where parameters were placed. */
export interface DiRecordedRequest {
  method: string;
  path: string;
  /** Query string parameters. */
  query: Record<string, string>;
  /** Urlencoded form body parameters (empty for any other body). */
  body: Record<string, string>;
  contentType: string | undefined;
}

/** Counters of the di wire protocol, next to the engine's. */
export interface DiCounters {
  /** Token requests whose parameters came in the query string / in a form body. */
  tokenParametersInQuery: number;
  tokenParametersInBody: number;
  /** API requests whose access_token came in the query string / in a form body / in an Authorization header. */
  apiCredentialsInQuery: number;
  apiCredentialsInBody: number;
  apiCredentialsInHeader: number;
  /** API answers that were a business error envelope (HTTP 200, errorCode other than 000000). */
  apiBusinessErrors: number;
  /** API requests refused with 401/403. */
  apiRefused: number;
}

export interface DiSandbox extends RunningSandbox {
  readonly wire: DiWireSettings;
  readonly diCounters: DiCounters;
  /** The last request to `/api/*`, as received (before any check). */
  readonly lastApiRequest: DiRecordedRequest | undefined;
  /** The last request to `/oauth/token`, as received. Holds secrets: a test aid only. */
  readonly lastTokenRequest: DiRecordedRequest | undefined;
}

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;
const OK = '000000';

/** Shows enough of a token to recognise it in a test, never the whole value (ASCII: it goes into headers). */
function truncate(value: string): string {
  return value.length <= 12 ? '...' : `${value.slice(0, 6).replace(/[^A-Za-z0-9._~+/-]/g, '?')}...`;
}

function isForm(req: SandboxRequest): boolean {
  return /x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '');
}

/**
 * Parameters as a servlet container reads them: the query string, then a urlencoded
 * POST body (a JSON body is not parameters). For a repeated name the query's value wins.
 */
function servletParams(req: SandboxRequest): Record<string, string> {
  const query = Object.fromEntries(req.url.searchParams);
  return isForm(req) ? { ...req.body, ...query } : query;
}

function record(req: SandboxRequest): DiRecordedRequest {
  return {
    method: req.method,
    path: req.url.pathname,
    query: Object.fromEntries(req.url.searchParams),
    body: isForm(req) ? { ...req.body } : {},
    contentType: req.headers['content-type'],
  };
}

interface PatentRecord {
  pid: string;
  title: string;
  appNumber: string;
  appDate: string;
  pubNumber: string;
  pubDate: string;
  applicant: string;
  inventor: string;
  ipc: string;
  abstract: string;
}

const CN_PATENTS: readonly PatentRecord[] = [
  {
    pid: 'PIDCNA0SANDBOX0001',
    title: '一种基于导频的信道估计方法及装置',
    appNumber: 'CN202010000101.3',
    appDate: '2020-01-03',
    pubNumber: 'CN111130012A',
    pubDate: '2020-05-08',
    applicant: '华为技术有限公司',
    inventor: '张伟;李娜',
    ipc: 'H04L25/02',
    abstract: '本申请提供一种信道估计方法（沙盒数据）。',
  },
  {
    pid: 'PIDCNA0SANDBOX0002',
    title: '数据包传输方法、通信装置及系统',
    appNumber: 'CN202110000202.7',
    appDate: '2021-02-11',
    pubNumber: 'CN114900021A',
    pubDate: '2022-08-12',
    applicant: '华为技术有限公司',
    inventor: '王强',
    ipc: 'H04L47/10',
    abstract: '一种数据包传输方法（沙盒数据）。',
  },
  {
    pid: 'PIDCNA0SANDBOX0003',
    title: '一种小区切换方法及基站',
    appNumber: 'CN201910000303.1',
    appDate: '2019-03-20',
    pubNumber: 'CN109905003A',
    pubDate: '2019-06-18',
    applicant: '中兴通讯股份有限公司',
    inventor: '陈刚',
    ipc: 'H04W36/00',
    abstract: '一种小区切换方法（沙盒数据）。',
  },
  {
    pid: 'PIDCNA0SANDBOX0004',
    title: '基于注意力机制的文本分类模型训练方法',
    appNumber: 'CN202210000404.9',
    appDate: '2022-04-01',
    pubNumber: 'CN114600004A',
    pubDate: '2022-06-10',
    applicant: '清华大学',
    inventor: '刘洋;赵敏',
    ipc: 'G06N3/08',
    abstract: '一种文本分类模型训练方法（沙盒数据）。',
  },
  {
    pid: 'PIDCNA0SANDBOX0005',
    title: '电池包及电动汽车',
    appNumber: 'CN202020000505.X',
    appDate: '2020-05-15',
    pubNumber: 'CN212000005U',
    pubDate: '2020-11-24',
    applicant: '比亚迪股份有限公司',
    inventor: '孙磊',
    ipc: 'H01M50/20',
    abstract: '一种电池包（沙盒数据）。',
  },
];

const EP_PATENTS: readonly PatentRecord[] = [
  {
    pid: 'PIDEPA0SANDBOX0001',
    title: 'Channel estimation method and apparatus',
    appNumber: 'EP20900001.5',
    appDate: '2020-12-01',
    pubNumber: 'EP4000001A1',
    pubDate: '2022-05-18',
    applicant: 'HUAWEI TECHNOLOGIES CO., LTD.',
    inventor: 'ZHANG, Wei',
    ipc: 'H04L25/02',
    abstract: 'A channel estimation method (sandbox data).',
  },
  {
    pid: 'PIDEPA0SANDBOX0002',
    title: 'Battery pack and electric vehicle',
    appNumber: 'EP21900002.3',
    appDate: '2021-06-07',
    pubNumber: 'EP4100002A1',
    pubDate: '2022-12-14',
    applicant: 'BYD COMPANY LIMITED',
    inventor: 'SUN, Lei',
    ipc: 'H01M50/20',
    abstract: 'A battery pack (sandbox data).',
  },
];

interface TrademarkRecord {
  id: string;
  name: string;
  regNumber: string;
  intCls: string;
  applicant: string;
  appDate: string;
  status: string;
}

const TRADEMARKS: readonly TrademarkRecord[] = [
  { id: 'TMCN0SANDBOX0001', name: '华为', regNumber: '1000001', intCls: '9', applicant: '华为技术有限公司', appDate: '2003-03-10', status: '注册' },
  { id: 'TMCN0SANDBOX0002', name: 'HUAWEI', regNumber: '1000002', intCls: '38', applicant: '华为技术有限公司', appDate: '2004-07-22', status: '注册' },
  { id: 'TMCN0SANDBOX0003', name: '比亚迪', regNumber: '1000003', intCls: '12', applicant: '比亚迪股份有限公司', appDate: '2005-01-18', status: '注册' },
];

/** The terms of a search expression: every `(...)` group, or the whole text when there is none. */
function expressionTerms(express: string): string[] {
  const groups = [...express.matchAll(/\(([^()]*)\)/g)].map((m) => (m[1] ?? '').trim()).filter((t) => t.length > 0);
  return groups.length > 0 ? groups : [express.trim()];
}

function matchesAll(item: object, terms: string[]): boolean {
  const text = Object.values(item).join('\u0001').toLowerCase();
  return terms.every((term) => text.includes(term.toLowerCase()));
}

const businessError = (errorCode: string, message: string): SandboxReply => reply.json(200, { errorCode, message });

/** Reads `page` (from 1) and `page_row` (10, 50 or 100); a business error when invalid. */
function paging(p: Record<string, string>): { page: number; rows: number } | SandboxReply {
  const page = p['page'] === undefined ? 1 : Number(p['page']);
  const rows = p['page_row'] === undefined ? 10 : Number(p['page_row']);
  if (!Number.isInteger(page) || page < 1) return businessError('100002', 'page 参数错误: must be an integer from 1');
  if (![10, 50, 100].includes(rows)) return businessError('100002', 'page_row 参数错误: must be 10, 50 or 100');
  return { page, rows };
}

function searchReply<T extends object>(records: readonly T[], p: Record<string, string>): SandboxReply {
  const express = p['express'];
  if (express === undefined || express.trim().length === 0) return businessError('100001', '检索表达式 express 不能为空 (express is required)');
  const paged = paging(p);
  if ('status' in paged) return paged;
  const matched = records.filter((r) => matchesAll(r, expressionTerms(express)));
  const start = (paged.page - 1) * paged.rows;
  return reply.json(200, {
    errorCode: OK,
    total: matched.length,
    page: paged.page,
    page_row: paged.rows,
    context: { records: matched.slice(start, start + paged.rows) },
  });
}

/**
 * A sandbox of DI开放平台 speaking its real wire protocol (Spring Security OAuth2 2.x):
 * `/oauth/authorize` (login page, 6-character codes, `response_type=code` or `token`),
 * `/oauth/token` (parameters from the query string or a form body; Spring's errors;
 * rotation with reuse detection; the answer shape and `expires_in` type are knobs)
 * and `/api/*` (credentials as `client_id`, `access_token`, `scope` parameters; business
 * errors in an HTTP 200 `errorCode` envelope; `invalid_token` as HTTP 401).
 */
export async function startDiSandbox(options: DiSandboxOptions = {}): Promise<DiSandbox> {
  const engine = new SandboxEngine(options);
  const title = options.title ?? 'DI开放平台 sandbox';
  const scopes = new Set(options.scopes ?? ['read_cn', 'read_ep', 'read_jp', 'read_tw']);
  const wire: DiWireSettings = {
    tokenResponseShape: options.tokenResponseShape ?? 'object',
    expiresInType: options.expiresInType ?? 'number',
    reuseUnexpiredTokens: options.reuseUnexpiredTokens ?? false,
    echoTokensInErrors: options.echoTokensInErrors ?? false,
  };
  const shown = (value: string) => (wire.echoTokensInErrors ? value : truncate(value));
  const counters: DiCounters = {
    tokenParametersInQuery: 0,
    tokenParametersInBody: 0,
    apiCredentialsInQuery: 0,
    apiCredentialsInBody: 0,
    apiCredentialsInHeader: 0,
    apiBusinessErrors: 0,
    apiRefused: 0,
  };
  const recorded: { api?: DiRecordedRequest; token?: DiRecordedRequest } = {};
  /** The live token of each client + user + scope, for Spring's token reuse. */
  const current = new Map<string, { issued: IssuedTokens; expiresAt: number }>();
  const grantKey = (g: Grant) => `${g.clientId}\u0000${g.userId}\u0000${g.scope}`;

  const authorize = (req: SandboxRequest): SandboxReply => {
    const p = servletParams(req);
    const client = engine.findClient(p['client_id']);
    const redirectUri = p['redirect_uri'];
    if (!client) return reply.html(401, '<h1>OAuth Error</h1><p>error="invalid_client", error_description="Bad client credentials"</p>');
    if (!redirectUri) {
      return reply.html(400, '<h1>OAuth Error</h1><p>error="invalid_request", error_description="A redirect_uri must be supplied."</p>');
    }
    const responseType = p['response_type'];
    const implicit = responseType === 'token';
    const finish = (params: Record<string, string>) => {
      const back = new URL(redirectUri);
      const all = { ...params, ...(p['state'] === undefined ? {} : { state: p['state'] }) };
      if (implicit) back.hash = new URLSearchParams(all).toString();
      else for (const [k, v] of Object.entries(all)) back.searchParams.set(k, v);
      return reply.redirect(back.toString());
    };
    if (responseType !== 'code' && !implicit) {
      return finish({ error: 'unsupported_response_type', error_description: `Unsupported response types: [${responseType ?? ''}]` });
    }
    const scope = (p['scope'] ?? 'read_cn').trim();
    const unknown = scope.split(/\s+/).filter((s) => !scopes.has(s));
    if (scope.length === 0 || unknown.length > 0) {
      return finish({ error: 'invalid_scope', error_description: `Invalid scope: ${scope}` });
    }
    let user = engine.settings.autoApprove ? engine.users[0] : undefined;
    if (!user) {
      const { username: _u, password: _p, decision: _d, ...hidden } = p;
      if (req.method !== 'POST' || p['decision'] === undefined) {
        engine.counters.authorize += 1;
        return loginPage(title, '/oauth/authorize', hidden, engine.users);
      }
      if (p['decision'] === 'deny') return finish({ error: 'access_denied', error_description: 'User denied access' });
      user = engine.login(p['username'], p['password']);
      if (!user) return loginPage(title, '/oauth/authorize', hidden, engine.users, true);
    } else {
      engine.counters.authorize += 1;
    }
    const grant: Grant = { clientId: client.clientId, userId: user.id, scope, extra: {} };
    if (implicit) {
      // Implicit tokens come without a refresh token (the platform's live 7 days; here accessTokenTtlSeconds).
      const issued = engine.issueTokens(grant, undefined, false);
      return finish({ access_token: issued.accessToken, token_type: 'bearer', expires_in: String(issued.expiresIn), scope });
    }
    return finish({ code: engine.issueCode(grant, redirectUri, undefined, 6) });
  };

  const tokenAnswer = (issued: IssuedTokens, expiresIn: number): SandboxReply => {
    const body: Record<string, unknown> = {
      access_token: issued.accessToken,
      token_type: 'bearer',
      ...(issued.refreshToken === undefined ? {} : { refresh_token: issued.refreshToken }),
      expires_in: wire.expiresInType === 'string' ? String(expiresIn) : expiresIn,
      scope: issued.grant.scope,
    };
    return reply.json(200, wire.tokenResponseShape === 'array' ? [body] : body, { ...NO_STORE });
  };

  const remember = (issued: IssuedTokens): SandboxReply => {
    current.set(grantKey(issued.grant), { issued, expiresAt: Date.now() + issued.expiresIn * 1000 });
    return tokenAnswer(issued, issued.expiresIn);
  };

  const oauthError = (status: number, error: string, description: string): SandboxReply => {
    const headers: Record<string, string> = { ...NO_STORE };
    if (status === 401) headers['www-authenticate'] = `Form realm="oauth2/client", error="${error}", error_description="${description}"`;
    return reply.json(status, { error, error_description: description }, headers);
  };

  const tokenEndpoint = async (req: SandboxRequest): Promise<SandboxReply> => {
    if (req.params['grant_type'] === 'authorization_code') await engine.delayCodeExchange();
    return withFault(engine.takeFault('token'), () => {
      engine.counters.token += 1;
      recorded.token = record(req);
      if (req.method !== 'POST') return oauthError(405, 'method_not_allowed', `Request method '${req.method}' not supported`);
      const p = servletParams(req);
      if (req.url.searchParams.has('grant_type')) counters.tokenParametersInQuery += 1;
      else if (isForm(req) && req.body['grant_type'] !== undefined) counters.tokenParametersInBody += 1;

      const basic = typeof req.headers['authorization'] === 'string' && /^Basic\s/i.test(req.headers['authorization']);
      let clientId = p['client_id'];
      let clientSecret = p['client_secret'];
      if (basic) {
        const decoded = Buffer.from(String(req.headers['authorization']).replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        clientId = decodeURIComponent(decoded.slice(0, colon));
        clientSecret = decodeURIComponent(decoded.slice(colon + 1));
      }
      if (clientId === undefined) return oauthError(401, 'unauthorized', 'Full authentication is required to access this resource');
      const client = engine.authenticateClient(clientId, clientSecret);
      if (!client) return oauthError(401, 'invalid_client', 'Bad client credentials');

      const grantType = p['grant_type'];
      if (grantType === undefined) return oauthError(400, 'invalid_request', 'Missing grant type');
      if (grantType === 'authorization_code') {
        engine.counters.authorizationCode += 1;
        const code = p['code'];
        if (code === undefined || code.length === 0) return oauthError(400, 'invalid_request', 'An authorization code must be supplied.');
        // Spring compares the redirect_uri of both requests; a missing one is a mismatch too.
        const grant = engine.redeemCode(code, client.clientId, p['redirect_uri'] ?? '');
        if ('error' in grant) {
          if (/another client/.test(grant.description)) return oauthError(401, 'invalid_client', 'Client ID mismatch');
          if (/redirect_uri/.test(grant.description)) return oauthError(400, 'invalid_grant', 'Redirect URI mismatch.');
          return oauthError(400, 'invalid_grant', `Invalid authorization code: ${code}`);
        }
        const live = wire.reuseUnexpiredTokens ? current.get(grantKey(grant)) : undefined;
        if (live && engine.verifyAccessToken(live.issued.accessToken)) {
          return tokenAnswer(live.issued, Math.max(1, Math.floor((live.expiresAt - Date.now()) / 1000)));
        }
        return remember(engine.issueTokens(grant));
      }
      if (grantType === 'refresh_token') {
        engine.counters.refresh += 1;
        const refreshToken = p['refresh_token'] ?? '';
        const result = engine.refresh(refreshToken, client.clientId);
        if ('error' in result) {
          if (/another client/.test(result.description)) return oauthError(400, 'invalid_grant', `Wrong client for this refresh token: ${shown(refreshToken)}`);
          if (/expired/.test(result.description)) return oauthError(401, 'invalid_token', `Invalid refresh token (expired): ${shown(refreshToken)}`);
          return oauthError(400, 'invalid_grant', `Invalid refresh token: ${shown(refreshToken)}`);
        }
        return remember(result);
      }
      return oauthError(400, 'unsupported_grant_type', `Unsupported grant type: ${grantType}`);
    });
  };

  /** Spring's resource server: a Bearer header or an access_token parameter, then the platform's own checks. */
  const authenticateApi = (req: SandboxRequest, p: Record<string, string>): Grant | SandboxReply => {
    const header = bearerToken(req.headers);
    if (header !== undefined) counters.apiCredentialsInHeader += 1;
    else if (req.url.searchParams.has('access_token')) counters.apiCredentialsInQuery += 1;
    else if (isForm(req) && req.body['access_token'] !== undefined) counters.apiCredentialsInBody += 1;
    const accessToken = header ?? p['access_token'];
    const refuse = (status: number, error: string, description: string, extra: Record<string, string> = {}) => {
      counters.apiRefused += 1;
      return reply.json(status, { error, error_description: description, ...extra }, {
        ...NO_STORE,
        'www-authenticate': `Bearer realm="oauth2-resource", error="${error}", error_description="${description}"`,
      });
    };
    if (accessToken === undefined || accessToken.length === 0) {
      return refuse(401, 'unauthorized', 'Full authentication is required to access this resource');
    }
    const grant = engine.verifyAccessToken(accessToken);
    if (!grant) return refuse(401, 'invalid_token', `Invalid access token: ${shown(accessToken)}`);
    if (p['client_id'] !== grant.clientId) {
      return refuse(403, 'access_denied', p['client_id'] === undefined ? 'client_id is required' : 'client_id does not match the access token');
    }
    const granted = new Set(grant.scope.split(/\s+/));
    const asked = (p['scope'] ?? '').split(/\s+/).filter((s) => s.length > 0);
    if (asked.length === 0 || asked.some((s) => !granted.has(s))) {
      return refuse(403, 'insufficient_scope', 'Insufficient scope for this resource', { scope: grant.scope });
    }
    return grant;
  };

  const apiRoutes: Record<string, (p: Record<string, string>, grant: Grant) => SandboxReply> = {
    // Not a platform API: the sandbox's own echo of whose token called it, for tests and the example app.
    '/api/sandbox/whoami': (_p, grant) =>
      reply.json(200, { errorCode: OK, total: 1, context: { records: [{ userId: grant.userId, scope: grant.scope }] } }),
    '/api/patent/search/expression': (p) => searchReply(CN_PATENTS, p),
    '/api/patent/search/expression2': (p) => searchReply(EP_PATENTS, p),
    '/api/patent/detail/catalog': (p) => {
      const pid = p['pid'];
      const pno = p['pno'];
      if (pid === undefined && pno === undefined) return businessError('100001', 'pid 或 pno 不能为空 (pid or pno is required)');
      const found = [...CN_PATENTS, ...EP_PATENTS].find((r) => r.pid === pid || r.pubNumber === pno);
      if (!found) return businessError('100003', '未找到相关数据 (no record)');
      return reply.json(200, { errorCode: OK, total: 1, context: { records: [found] } });
    },
    '/api/trademark/search/expression': (p) => searchReply(TRADEMARKS, p),
    '/api/trademark/detail/china': (p) => {
      const id = p['id'];
      if (id === undefined) return businessError('100001', 'id 不能为空 (id is required)');
      const found = TRADEMARKS.find((r) => r.id === id);
      if (!found) return businessError('100003', '未找到相关数据 (no record)');
      return reply.json(200, { errorCode: OK, total: 1, context: { records: [found] } });
    },
  };

  const api = (req: SandboxRequest): Promise<SandboxReply> =>
    withFault(engine.takeFault('api'), () => {
      engine.counters.api += 1;
      recorded.api = record(req);
      const p = servletParams(req);
      const grant = authenticateApi(req, p);
      if ('status' in grant) return grant;
      const handler = apiRoutes[req.url.pathname];
      if (!handler) {
        return reply.json(404, { timestamp: new Date().toISOString(), status: 404, error: 'Not Found', message: 'No message available', path: req.url.pathname });
      }
      const out = handler(p, grant);
      if (out.status === 200 && out.body !== undefined && !out.body.includes(`"errorCode":"${OK}"`)) counters.apiBusinessErrors += 1;
      return out;
    });

  const running = await listen(
    engine,
    (req) => {
      const path = req.url.pathname;
      if (path === '/oauth/authorize' && (req.method === 'GET' || req.method === 'POST')) return authorize(req);
      if (path === '/oauth/token') return tokenEndpoint(req);
      if (path.startsWith('/api/')) return api(req);
      return undefined;
    },
    options,
  );

  return {
    url: running.url,
    port: running.port,
    engine,
    close: running.close,
    wire,
    diCounters: counters,
    get lastApiRequest() {
      return recorded.api;
    },
    get lastTokenRequest() {
      return recorded.token;
    },
  };
}
