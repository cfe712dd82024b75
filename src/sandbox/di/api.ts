/** The platform's API under `/api/`: Spring's resource server checks, then the routes and their business envelope. */
import type { Grant } from '../engine.js';
import { bearerToken, reply, serve, type SandboxReply, type SandboxRequest } from '../server.js';
import { businessError, CN_PATENTS, EP_PATENTS, OK, searchReply, TRADEMARKS } from './data.js';
import { isForm, NO_STORE, record, servletParams, shown, type DiSandboxState } from './wire.js';

/** Spring's resource server: a Bearer header or an access_token parameter, then the platform's own checks. */
function authenticateApi(state: DiSandboxState, req: SandboxRequest, p: Record<string, string>): Grant | SandboxReply {
  const { engine, counters } = state;
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
  if (!grant) return refuse(401, 'invalid_token', `Invalid access token: ${shown(state.wire, accessToken)}`);
  if (p['client_id'] !== grant.clientId) {
    return refuse(403, 'access_denied', p['client_id'] === undefined ? 'client_id is required' : 'client_id does not match the access token');
  }
  const granted = new Set(grant.scope.split(/\s+/));
  const asked = (p['scope'] ?? '').split(/\s+/).filter((s) => s.length > 0);
  if (asked.length === 0 || asked.some((s) => !granted.has(s))) {
    return refuse(403, 'insufficient_scope', 'Insufficient scope for this resource', { scope: grant.scope });
  }
  return grant;
}

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

export function api(state: DiSandboxState, req: SandboxRequest): Promise<SandboxReply> {
  return serve(state.engine, 'api', () => {
    state.recorded.api = record(req);
    const p = servletParams(req);
    const grant = authenticateApi(state, req, p);
    if ('status' in grant) return grant;
    const handler = apiRoutes[req.url.pathname];
    if (!handler) {
      return reply.json(404, { timestamp: new Date().toISOString(), status: 404, error: 'Not Found', message: 'No message available', path: req.url.pathname });
    }
    const out = handler(p, grant);
    if (out.status === 200 && out.body !== undefined && !out.body.includes(`"errorCode":"${OK}"`)) state.counters.apiBusinessErrors += 1;
    return out;
  });
}
