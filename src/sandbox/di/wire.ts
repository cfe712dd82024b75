/** The di sandbox's options and wire settings, how it reads and records requests, and the state its endpoints share. */
import type { IssuedTokens, SandboxClient, SandboxEngine, SandboxSettings, SandboxUser } from '../engine.js';
import type { RunningSandbox, SandboxRequest, SandboxServerOptions } from '../server.js';

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

export const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;

/** Shows enough of a token to recognise it in a test, never the whole value (ASCII: it goes into headers). */
function truncate(value: string): string {
  return value.length <= 12 ? '...' : `${value.slice(0, 6).replace(/[^A-Za-z0-9._~+/-]/g, '?')}...`;
}

/** A token as an error message shows it: whole when `echoTokensInErrors` is set, else truncated. */
export function shown(wire: DiWireSettings, value: string): string {
  return wire.echoTokensInErrors ? value : truncate(value);
}

export function isForm(req: SandboxRequest): boolean {
  return /x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '');
}

/**
 * Parameters as a servlet container reads them: the query string, then a urlencoded
 * POST body (a JSON body is not parameters). For a repeated name the query's value wins.
 */
export function servletParams(req: SandboxRequest): Record<string, string> {
  const query = Object.fromEntries(req.url.searchParams);
  return isForm(req) ? { ...req.body, ...query } : query;
}

/** A request as received, for {@link DiSandbox.lastApiRequest} and {@link DiSandbox.lastTokenRequest}. */
export function record(req: SandboxRequest): DiRecordedRequest {
  return {
    method: req.method,
    path: req.url.pathname,
    query: Object.fromEntries(req.url.searchParams),
    body: isForm(req) ? { ...req.body } : {},
    contentType: req.headers['content-type'],
  };
}

/** What the endpoints of one running sandbox share. */
export interface DiSandboxState {
  readonly engine: SandboxEngine;
  readonly title: string;
  /** Scopes the clients may ask for. */
  readonly scopes: Set<string>;
  readonly wire: DiWireSettings;
  readonly counters: DiCounters;
  readonly recorded: { api?: DiRecordedRequest; token?: DiRecordedRequest };
  /** The live token of each client + user + scope, for Spring's token reuse. */
  readonly current: Map<string, { issued: IssuedTokens; expiresAt: number }>;
}
