/**
 * Token-response fuzz. For each provider — the generic `defineProvider` provider
 * "example", di, cnblogs and sop — 1,000+ token-endpoint answers generated from a seeded
 * PRNG are each driven through a real login over HTTP (the app's login route, the
 * provider's sandbox, the app's callback route). It proves that for every answer exactly
 * one of these holds:
 *
 * - the login succeeds (303) and the token set it stored is usable: the access token (and
 *   refresh token, if any) is 1*VSCHAR without outer spaces (`isUsableTokenValue`), fits in
 *   an `Authorization` header, and the guarded route answers 200 — unless the answer's
 *   token was already expired and came without a refresh token the provider would honour:
 *   then the guard's typed 401 is the right answer (REAUTHORIZATION_REQUIRED, or
 *   AUTHORIZATION_REQUIRED once the store has let go of a set that was useless from the start);
 * - the callback answers a typed 502 `{ error: 'OAUTH_KEEPER_...' }` (one this provider can
 *   raise for a bad token answer), nothing was stored for that session, and the guarded
 *   route answers 401 AUTHORIZATION_REQUIRED;
 *
 * never a 500, never a stored token that could not be used. The seed is in the test names;
 * OAUTH_KEEPER_FUZZ_SEED runs another one, OAUTH_KEEPER_FUZZ_VERBOSE=1 prints the outcomes.
 *
 * The answers are built around a genuine one, so that the fields left alone still work:
 * generic and di get their body through `engine.injectFault('token', { body })` around
 * tokens the test has the sandbox's engine issue; cnblogs rewrites its real answer
 * (id_token included) through `mutateTokenAnswer`; sop rewrites the text of its real
 * response node through `settings.tokenNodeText`, which the sandbox then signs, so the
 * fuzzed node gets past the signature check to the token parsing.
 */
import type request from 'supertest';
import { ErrorCodes, type ErrorCode } from '../../src/errors';
import { isUsableTokenValue, type TokenSet } from '../../src/lib/token-set';
import { DiStrategy } from '../../src/providers/di';
import { startCnblogsSandbox, startDiSandbox, type CnblogsSandbox, type RunningSopSandbox } from '../../src/sandbox/index';
import { createTestApp, startLogin, type TestApp, type TestAppOptions } from '../helpers/app';
import { rsaKeyPair } from '../helpers/keys';
import { cnblogsSandboxStrategy, sopSandboxStrategy, startSopSandboxForApp } from '../helpers/providers';

const SEED = Number(process.env['OAUTH_KEEPER_FUZZ_SEED'] ?? 0x70c3f022) >>> 0;
const BODIES_PER_PROVIDER = 1000;

// ---------------------------------------------------------------------------
// Seeded randomness

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let z = this.#state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  weighted<T>(items: ReadonlyArray<readonly [number, T]>): T {
    let roll = this.next() * items.reduce((sum, [w]) => sum + w, 0);
    for (const [w, item] of items) if ((roll -= w) < 0) return item;
    return items[items.length - 1]![1];
  }
}

function seedFor(provider: string): number {
  let h = SEED;
  for (const c of provider) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

// ---------------------------------------------------------------------------
// Body generation

/** Where a provider's answer keeps each field. */
interface Fields {
  access: string;
  refresh: string;
  expires: string;
  refreshExpires?: string;
  tokenType?: string;
  scope?: string;
  idToken?: string;
  /** sop: the gateway envelope. */
  envelope?: boolean;
}

const STANDARD_FIELDS: Fields = {
  access: 'access_token',
  refresh: 'refresh_token',
  expires: 'expires_in',
  refreshExpires: 'refresh_token_expires_in',
  tokenType: 'token_type',
  scope: 'scope',
};
const CNBLOGS_FIELDS: Fields = { ...STANDARD_FIELDS, idToken: 'id_token' };
const SOP_FIELDS: Fields = { access: 'app_auth_token', refresh: 'app_refresh_token', expires: 'expires_in', refreshExpires: 're_expires_in', envelope: true };

/** The answer being built: a record, how it is wrapped, and JSON literals spliced in as text. */
interface Draft {
  record: Record<string, unknown>;
  wrap?: (record: Record<string, unknown>) => unknown;
  indent?: number;
  raw: string[];
}

/** A placeholder that `serialize` replaces with `literal` verbatim (numbers JSON.parse turns into Infinity, deep nesting...). */
function rawLiteral(draft: Draft, literal: string): string {
  draft.raw.push(literal);
  return `@@raw${draft.raw.length - 1}@@`;
}

function serialize(draft: Draft): string {
  const text = JSON.stringify(draft.wrap ? draft.wrap(draft.record) : draft.record, null, draft.indent);
  return text.replace(/"@@raw(\d+)@@"/g, (_m, i: string) => draft.raw[Number(i)]!);
}

/** Sets a member as an own, enumerable property, `__proto__` included. */
function setMember(record: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

const show = (value: unknown): string => {
  const text = value === undefined ? 'undefined' : JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...(${text.length})` : text;
};

const SPECIAL_TOKENS: readonly string[] = [
  '', ' ', '   ', '\t', '\r\n', 'tok\r\nSet-Cookie: a=b', 'tok\n', 'tok\r', '\ntok', 'a\u0000b', '\u0000', 'a\u0007b', 'a\u001bb',
  'a\u001fb', 'a\u007fb', '\u007f', 'a\u0080b', 'a\u009fb', 'tökén', '令牌', 'tok😀', 'a\uD800b', '\uD800', '\uDFFF', 'a\uDC00\uD800b',
  ' lead', 'trail ', ' both ', 'in ner', 'a  b', 'tab\tin', '\u00a0nbsp', 'a\u00a0b', 'zw\u200bj', '\ufefftok', 'a\u2028b', '"', '\\',
  '\\n', '%0d%0a', '~!@#$%^&*()_+{}|:"<>?', 'x', '=', 'a'.repeat(10_000), `${'b'.repeat(10_000)} `, `${'c'.repeat(5000)}\n${'c'.repeat(5000)}`,
  `${'d'.repeat(5000)} ${'d'.repeat(5000)}`,
];

/** Characters by kind, for random tokens: mostly printable ASCII, with every kind of trouble mixed in. */
function randomChar(rng: Rng): string {
  return rng.weighted<() => string>([
    [60, () => String.fromCharCode(rng.int(0x21, 0x7e))],
    [8, () => ' '],
    [8, () => String.fromCharCode(rng.int(0x00, 0x1f))],
    [3, () => '\u007f'],
    [3, () => String.fromCharCode(rng.int(0x80, 0x9f))],
    [5, () => String.fromCharCode(rng.int(0xa0, 0xff))],
    [4, () => String.fromCharCode(rng.int(0x4e00, 0x9fff))],
    [3, () => String.fromCodePoint(rng.int(0x1f600, 0x1f64f))],
    [3, () => String.fromCharCode(rng.int(0xd800, 0xdfff))],
    [3, () => rng.pick(['\t', '\r', '\n'])],
  ])();
}

function weirdToken(rng: Rng, genuine: unknown): string {
  const real = typeof genuine === 'string' && genuine.length > 0 ? genuine : 'tok';
  return rng.weighted<() => string>([
    [40, () => rng.pick(SPECIAL_TOKENS)],
    [30, () => Array.from({ length: rng.int(1, 30) }, () => randomChar(rng)).join('')],
    [25, () => {
      const at = rng.int(0, real.length);
      return real.slice(0, at) + randomChar(rng) + real.slice(at);
    }],
    [5, () => rng.pick([` ${real}`, `${real} `, `${real}\n`, `${real}${real}`, real.toUpperCase()])],
    // Over the 1 MiB the token client reads.
    [0.3, () => 'e'.repeat(1024 * 1024 + 16)],
  ])();
}

const NON_STRINGS: readonly unknown[] = [0, 42, -1, 1.5, 1e308, true, false, null, {}, { value: 'tok' }, [], ['tok'], [1, 2]];

const LIFETIMES: readonly unknown[] = [
  -1e308, -86400, -1, 0, 30, 59, 60, 61, 90, 3599.5, 3600, 31_536_000, 1e12, 1e20, 1e306,
  '3600', ' 3600 ', '-1', '0', '30.5', '1e3', '0x10', 'NaN', 'Infinity', '', ' ', 'abc', '3600s', '٣٦٠٠', '3600\n',
  `-${'9'.repeat(400)}`, '9'.repeat(400), null, true, {}, [], [3600], { value: 3600 },
];
const LIFETIME_LITERALS: readonly string[] = ['1e400', '-1e400', '-0', '1E2', '3600.000', '0.0000001', '36e2'];

const TOKEN_TYPES: readonly unknown[] = ['', 'bearer', 'BEARER', 'mac', 'DPoP', 'Bearer ', 'Bearer\r\nX-Injected: 1', 'N_A', '令牌', 'x'.repeat(10_000), 42, null, true, {}, []];
const SCOPES: readonly unknown[] = ['read', '', 'read write', ' ', 'a\r\nb', '令牌', 'x'.repeat(10_000), ['read', 'write'], [], [1, {}], 42, null, {}];
const MEMBER_NAMES: readonly string[] = ['user_id', 'extra', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'error', '', '令牌', 'k'.repeat(1000), 'a.b', 'sign'];
const DEPTHS: readonly number[] = [1, 2, 8, 15, 16, 17, 18, 50, 5000];

/** A value nested `depth` levels deep (objects and arrays mixed), as JSON text. */
function nestedLiteral(rng: Rng, depth: number): string {
  let open = '';
  let close = '';
  for (let i = 0; i < depth; i++) {
    if (rng.chance(0.5)) {
      open += '{"n":';
      close = '}' + close;
    } else {
      open += '[';
      close = ']' + close;
    }
  }
  return `${open}"leaf"${close}`;
}

type ValueMutation = (rng: Rng, draft: Draft, fields: Fields, genuine: Record<string, unknown>) => string | undefined;

const VALUE_MUTATIONS: ReadonlyArray<readonly [number, ValueMutation]> = [
  [30, (rng, draft, fields, genuine) => {
    const field = rng.pick([fields.access, fields.access, fields.refresh]);
    const value = rng.weighted<() => unknown>([
      [70, () => weirdToken(rng, genuine[field])],
      [20, () => rng.pick(NON_STRINGS)],
      [10, () => undefined],
    ])();
    if (value === undefined) delete draft.record[field];
    else draft.record[field] = value;
    return `${field}=${show(value)}`;
  }],
  [14, (rng, draft, fields) => {
    const field = fields.refreshExpires !== undefined && rng.chance(0.35) ? fields.refreshExpires : fields.expires;
    if (rng.chance(0.2)) {
      const literal = rng.pick(LIFETIME_LITERALS);
      draft.record[field] = rawLiteral(draft, literal);
      return `${field}=${literal}`;
    }
    const value = rng.pick(LIFETIMES);
    draft.record[field] = value;
    return `${field}=${show(value)}`;
  }],
  [6, (rng, draft, fields) => {
    if (fields.tokenType === undefined) return undefined;
    const value = rng.pick(TOKEN_TYPES);
    draft.record[fields.tokenType] = value;
    return `${fields.tokenType}=${show(value)}`;
  }],
  [5, (rng, draft, fields) => {
    if (fields.scope === undefined) return undefined;
    const value = rng.pick(SCOPES);
    draft.record[fields.scope] = value;
    return `${fields.scope}=${show(value)}`;
  }],
  [6, (rng, draft, fields, genuine) => {
    if (fields.idToken === undefined) return undefined;
    const real = String(genuine[fields.idToken] ?? '');
    const value = rng.weighted<() => unknown>([
      [40, () => weirdToken(rng, real)],
      [20, () => `${real.slice(0, -2)}${real.endsWith('A') ? 'B' : 'A'}`],
      [15, () => real.split('.').slice(0, 2).join('.')],
      [15, () => rng.pick(NON_STRINGS)],
      [10, () => undefined],
    ])();
    if (value === undefined) delete draft.record[fields.idToken];
    else draft.record[fields.idToken] = value;
    return `${fields.idToken}=${show(value)}`;
  }],
  [12, (rng, draft) => {
    const name = rng.pick(MEMBER_NAMES);
    const depth = rng.chance(0.7) ? rng.pick(DEPTHS) : rng.int(1, 30);
    const value = rng.weighted<() => unknown>([
      [70, () => rawLiteral(draft, nestedLiteral(rng, depth))],
      [30, () => rng.pick([...NON_STRINGS, 'text', 'invalid_grant'])],
    ])();
    setMember(draft.record, name, value);
    return `extra ${show(name)} ${typeof value === 'string' && value.startsWith('@@raw') ? `nested ${depth}` : show(value)}`;
  }],
  [5, (rng, draft) => {
    const keys = Object.keys(draft.record);
    if (keys.length === 0) return undefined;
    const key = rng.pick(keys);
    delete draft.record[key];
    return `without ${key}`;
  }],
  [4, (rng, draft, fields) => {
    const value = rng.pick<unknown>(['invalid_grant', 'server_error', '', 42, null, {}, ['invalid_grant']]);
    const name = fields.envelope ? rng.pick(['error', 'sub_code']) : 'error';
    setMember(draft.record, name, value);
    return `${name}=${show(value)}`;
  }],
  [4, (rng, draft, fields) => {
    if (!fields.envelope) return undefined;
    const field = rng.pick(['code', 'msg', 'request_id', 'user_id']);
    const value = rng.pick<unknown>(['20000', '40004', '10000', 10000, 20001, '', null, {}, '\u0000', undefined]);
    if (value === undefined) delete draft.record[field];
    else draft.record[field] = value;
    return `${field}=${show(value)}`;
  }],
  [6, (rng, draft) => {
    const [label, wrap] = rng.pick<readonly [string, (r: Record<string, unknown>) => unknown]>([
      ['[answer]', (r) => [r]],
      ['[answer, answer]', (r) => [r, { ...r, access_token: 'second' }]],
      ['[[answer]]', (r) => [[r]]],
      ['[]', () => []],
      ['[null]', () => [null]],
      ['{ answer }', (r) => ({ token: r })],
      ['{}', () => ({})],
      ['"answer"', (r) => JSON.stringify(r)],
      ['42', () => 42],
      ['null', () => null],
      ['true', () => true],
    ]);
    draft.wrap = wrap;
    return `shape ${label}`;
  }],
  [3, (rng, draft) => {
    draft.indent = rng.pick([1, 2, 4]);
    return `indented ${draft.indent}`;
  }],
];

/** A mutation of the serialized answer; `record` is the answer's record as serialized. */
type TextMutation = (rng: Rng, text: string, fields: Fields, record: Record<string, unknown>) => [label: string, text: string];

/** Rewrites the JSON string literal of `record[field]` in `text`; the label says when there was none to rewrite. */
function rewriteString(text: string, record: Record<string, unknown>, field: string, label: string, by: (quoted: string) => string): [string, string] {
  const value = record[field];
  const quoted = typeof value === 'string' && value.length > 1 ? JSON.stringify(value) : undefined;
  const at = quoted === undefined ? -1 : text.indexOf(quoted);
  if (quoted === undefined || at < 0) return [`${label} (no ${field} string)`, text];
  return [label, text.slice(0, at) + by(quoted) + text.slice(at + quoted.length)];
}

const NON_JSON: readonly string[] = [
  '', ' ', 'OK', 'null\u0000', '{', '}', '[', '<html><body><h1>502 Bad Gateway</h1></body></html>', 'access_token=abc&token_type=bearer&expires_in=3600',
  '{"access_token":"abc"', '{"access_token":"abc",}', "{'access_token':'abc'}", '{"access_token":"abc"} trailing', '{"access_token":"abc"}{"access_token":"def"}',
  '{"access_token":abc}', '\u0000\u0001\u0002', 'undefined', 'NaN', '{"access_token":"abc","expires_in":NaN}',
];

const TEXT_MUTATIONS: ReadonlyArray<readonly [number, TextMutation]> = [
  [30, (rng, text) => {
    const at = rng.int(0, Math.max(0, text.length - 1));
    return [`truncated at ${at}/${text.length}`, text.slice(0, at)];
  }],
  [15, (rng) => {
    const text = rng.chance(0.8) ? rng.pick(NON_JSON) : Array.from({ length: rng.int(1, 40) }, () => randomChar(rng)).join('');
    return [`non-JSON ${show(text)}`, text];
  }],
  [25, (rng, text, fields, record) => {
    // JSON.parse keeps the last of duplicate keys; a raw-text scan might keep the first.
    const field = rng.pick([fields.access, fields.refresh]);
    const value = rng.chance(0.7) ? weirdToken(rng, record[field]) : rng.pick(NON_STRINGS);
    const member = `${JSON.stringify(field)}:${JSON.stringify(value)}`;
    const open = text.indexOf('{');
    const close = text.lastIndexOf('}');
    if (open < 0 || close < 0) return ['duplicate key (no object)', text];
    return rng.chance(0.5)
      ? [`duplicate ${field}=${show(value)} first`, `${text.slice(0, open + 1)}${member},${text.slice(open + 1)}`]
      : [`duplicate ${field}=${show(value)} last`, `${text.slice(0, close)},${member}${text.slice(close)}`];
  }],
  [15, (rng, text, fields, record) => {
    // An unescaped control character inside a string: not JSON at all.
    const field = rng.pick([fields.access, fields.refresh]);
    const control = String.fromCharCode(rng.pick([0x00, 0x01, 0x09, 0x0a, 0x0d, 0x1f]));
    return rewriteString(text, record, field, `raw control ${show(control)} in ${field}`, (q) => `${q.slice(0, 2)}${control}${q.slice(2)}`);
  }],
  [10, (rng, text, fields, record) => {
    // The same value, every character written as a \u escape: valid JSON, so the answer must still work.
    const field = rng.pick([fields.access, fields.refresh]);
    const escaped = (q: string) => `"${(JSON.parse(q) as string).split('').map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`;
    return rewriteString(text, record, field, `${field} \\u-escaped`, escaped);
  }],
  [5, (rng, text) => {
    const [label, wrapped] = rng.pick([
      ['BOM first', `\ufeff${text}`],
      ['spaces around', ` \n${text}\n `],
      ['lone surrogate after', `${text}\ud800`],
    ] as const);
    return [label, wrapped];
  }],
];

interface Generated {
  label: string;
  text: string;
}

/** One fuzzed answer around `genuine`: a few value mutations, sometimes a mutation of the text. */
function generateBody(rng: Rng, genuine: Record<string, unknown>, fields: Fields): Generated {
  if (rng.chance(0.04)) return { label: 'genuine', text: JSON.stringify(genuine) };
  const draft: Draft = { record: { ...genuine }, raw: [] };
  const labels: string[] = [];
  const wanted = rng.pick([1, 1, 1, 1, 1, 1, 2, 2, 2, 3]);
  while (labels.length < wanted) {
    const label = rng.weighted(VALUE_MUTATIONS)(rng, draft, fields, genuine);
    if (label !== undefined) labels.push(label);
  }
  let text = serialize(draft);
  if (rng.chance(0.25)) {
    const [label, mutated] = rng.weighted(TEXT_MUTATIONS)(rng, text, fields, draft.record);
    labels.push(label);
    text = mutated;
  }
  return { label: labels.join(' + '), text };
}

// ---------------------------------------------------------------------------
// Providers under test

interface FuzzTarget {
  t: TestApp;
  /** The strategy's (and login route's) name. */
  name: string;
  /** Has the next code exchange answer with `fuzz(genuine answer)`. */
  arm(fuzz: (genuine: Record<string, unknown>) => string): void;
  /** The genuine answer the armed fuzz was applied to, once the sandbox sent it. */
  taken(): Record<string, unknown> | undefined;
}

interface TargetSpec {
  name: string;
  fields: Fields;
  /** The typed errors (all 502) a refused answer may end in for this provider. */
  refusals: readonly ErrorCode[];
  start(): Promise<FuzzTarget>;
}

const TOKEN_REFUSALS = [ErrorCodes.TOKEN_RESPONSE_MALFORMED, ErrorCodes.TOKEN_ENDPOINT_FAILED] as const;
const ID_TOKEN_REFUSALS = Object.values(ErrorCodes).filter((code) => code.startsWith('OAUTH_KEEPER_ID_TOKEN_'));

/** generic and di: the engine issues real tokens, the body around them replaces the next token answer. */
async function injectedTarget(options: TestAppOptions, scope: string, wire: (issued: { accessToken: string; refreshToken?: string; expiresIn: number }) => Record<string, unknown>): Promise<FuzzTarget> {
  const t = await createTestApp(options);
  const engine = t.sandbox.engine;
  let genuine: Record<string, unknown> | undefined;
  return {
    t,
    name: t.strategy.name,
    arm(fuzz) {
      const issued = engine.issueTokens({ clientId: 'sandbox-client', userId: engine.users[0]!.id, scope, extra: {} });
      genuine = wire(issued);
      engine.injectFault('token', { body: fuzz(genuine) });
    },
    taken: () => (engine.pendingFaults('token') === 0 ? genuine : undefined),
  };
}

/** cnblogs and sop: a sandbox hook rewrites the real answer; `arm` queues one rewrite. */
function hookedTarget(t: TestApp): FuzzTarget & { rewrite(genuine: Record<string, unknown>): string | undefined } {
  let pending: ((genuine: Record<string, unknown>) => string) | undefined;
  let taken: Record<string, unknown> | undefined;
  return {
    t,
    name: t.strategy.name,
    arm(fuzz) {
      pending = fuzz;
      taken = undefined;
    },
    taken: () => taken,
    rewrite(genuine) {
      const fuzz = pending;
      if (!fuzz) return undefined;
      pending = undefined;
      taken = genuine;
      return fuzz(genuine);
    },
  };
}

const TARGETS: readonly TargetSpec[] = [
  {
    name: 'example',
    fields: STANDARD_FIELDS,
    // PROVIDER_ERROR: the userinfo endpoint refuses an access token the sandbox never issued.
    refusals: [...TOKEN_REFUSALS, ErrorCodes.PROVIDER_ERROR],
    start: () =>
      injectedTarget({}, 'read', (issued) => ({
        access_token: issued.accessToken,
        token_type: 'Bearer',
        expires_in: issued.expiresIn,
        refresh_token: issued.refreshToken,
        scope: 'read',
        user_id: '1001',
      })),
  },
  {
    name: 'di',
    fields: STANDARD_FIELDS,
    refusals: TOKEN_REFUSALS,
    start: () =>
      injectedTarget(
        {
          startSandbox: () => startDiSandbox({ autoApprove: true }),
          strategy: (sandbox) => new DiStrategy({ clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/di/callback', baseURL: sandbox.url }),
        },
        'read_cn',
        (issued) => ({ access_token: issued.accessToken, token_type: 'bearer', refresh_token: issued.refreshToken, expires_in: issued.expiresIn, scope: 'read_cn' }),
      ),
  },
  {
    name: 'cnblogs',
    fields: CNBLOGS_FIELDS,
    // The id_token's at_hash binds it to the access token, so a changed access token fails there too.
    refusals: [...TOKEN_REFUSALS, ...ID_TOKEN_REFUSALS, ErrorCodes.PROVIDER_ERROR],
    start: async () => {
      const t = await createTestApp({ startSandbox: () => startCnblogsSandbox({ autoApprove: true }), strategy: (s) => cnblogsSandboxStrategy(s.url) });
      const target = hookedTarget(t);
      (t.sandbox as CnblogsSandbox).mutateTokenAnswer = (body) => target.rewrite(body) ?? body;
      return target;
    },
  },
  {
    name: 'sop',
    fields: SOP_FIELDS,
    // RESPONSE_SIGNATURE_INVALID: text around the node (spaces) is not part of what was signed.
    refusals: [...TOKEN_REFUSALS, ErrorCodes.RESPONSE_SIGNATURE_INVALID],
    start: async () => {
      const keys = rsaKeyPair();
      const t = await createTestApp({ startSandbox: () => startSopSandboxForApp(keys), strategy: (s) => sopSandboxStrategy(s as RunningSopSandbox, keys) });
      const target = hookedTarget(t);
      (t.sandbox as RunningSopSandbox).settings.tokenNodeText = (node) => target.rewrite(node) ?? JSON.stringify(node);
      return target;
    },
  },
];

// ---------------------------------------------------------------------------
// The check of one login

interface Tally {
  succeeded: number;
  /** Successful logins whose token was due for refresh at once, and the guard refreshed it. */
  refreshedAtGuard: number;
  /** Successful logins left with nothing usable: expired at once, with no refresh token the provider would honour. */
  expiredAtOnce: number;
  refused: Map<ErrorCode, number>;
  problems: string[];
}

function fitsInHeader(token: string): boolean {
  try {
    new Headers({ authorization: `Bearer ${token}` });
    return true;
  } catch {
    return false;
  }
}

/** Why a stored set could not be used, or undefined when it can. */
function unusable(set: TokenSet): string | undefined {
  for (const [what, token] of [['access', set.accessToken], ['refresh', set.refreshToken]] as const) {
    if (what === 'refresh' && token === undefined) continue;
    if (typeof token !== 'string' || !isUsableTokenValue(token)) return `stored ${what} token ${show(token)} is not 1*VSCHAR`;
    if (!fitsInHeader(token)) return `stored ${what} token ${show(token)} does not fit in a header`;
  }
  // An instant is either "never" (null) or a real date: no overflow to ±Infinity or an Invalid Date.
  for (const [what, at] of [['expiresAt', set.expiresAt], ['refreshTokenExpiresAt', set.refreshTokenExpiresAt]] as const) {
    if (at === undefined || at === null) continue;
    if (!Number.isFinite(at) || Number.isNaN(new Date(at).getTime())) return `stored ${what} ${String(at)} is not a usable instant`;
  }
  return undefined;
}

/** When the store may drop the set (its TTL): the end of the refresh token's life, or the access token's without one. */
function usefulUntil(set: TokenSet): number | null | undefined {
  return set.refreshToken !== undefined ? set.refreshTokenExpiresAt : set.expiresAt;
}

async function fuzzLogin(spec: TargetSpec, target: FuzzTarget, rng: Rng, index: number, put: jest.SpyInstance, tally: Tally): Promise<void> {
  const { t, name } = target;
  const agent: ReturnType<typeof request.agent> = t.agent();
  const callback = await startLogin(agent, `/auth/${name}`);
  let body: Generated | undefined;
  target.arm((genuine) => (body = generateBody(rng, genuine, spec.fields)).text);
  const writesBefore = put.mock.calls.length;
  const res = await agent.get(callback).set('accept', 'application/json');
  const genuine = target.taken();
  const writes = put.mock.calls.slice(writesBefore);
  const problem = (what: string) => {
    tally.problems.push(`#${index} [${body?.label ?? 'not sent'}] ${JSON.stringify((body?.text ?? '').slice(0, 300))}: ${what}`);
  };
  if (!genuine || !body) return problem('the fuzzed answer was never sent');

  if (res.status === 303) {
    tally.succeeded += 1;
    if (writes.length !== 1) return problem(`the login stored ${writes.length} token sets`);
    const [owner, provider, set] = writes[0] as [string, string, TokenSet];
    if (provider !== name || owner !== (await t.ownerOf(agent))) return problem('the token set was stored for another session or provider');
    const why = unusable(set) ?? unusable((await t.store.get(owner, name))?.tokenSet ?? set);
    if (why) return problem(why);
    const dueBefore = t.keeper.refresher.needsRefresh(set);
    const me = await agent.get('/me').set('accept', 'application/json');
    const dueAfter = t.keeper.refresher.needsRefresh(set);
    const realRefresh = set.refreshToken !== undefined && set.refreshToken === genuine[spec.fields.refresh];
    if (me.status === 200 && me.body.provider === name) {
      if (dueBefore && realRefresh) tally.refreshedAtGuard += 1;
      return;
    }
    // Expired at once, with no refresh token the provider would honour: the guard asks for a new login...
    const reauthorize = me.status === 401 && me.body.error === ErrorCodes.REAUTHORIZATION_REQUIRED && dueAfter && !realRefresh;
    // ...or the store has already let go of a set the answer said was useless from the start.
    const until = usefulUntil(set);
    const dropped = me.status === 401 && me.body.error === ErrorCodes.AUTHORIZATION_REQUIRED && typeof until === 'number' && until <= Date.now();
    if (reauthorize || dropped) {
      tally.expiredAtOnce += 1;
      return;
    }
    return problem(`the login succeeded, then /me answered ${me.status} ${me.text.slice(0, 200)} (due for refresh: ${dueBefore}/${dueAfter}, real refresh token: ${realRefresh})`);
  }

  if (res.status === 502 && spec.refusals.includes(res.body?.error)) {
    const code = res.body.error as ErrorCode;
    tally.refused.set(code, (tally.refused.get(code) ?? 0) + 1);
    if (body.label === 'genuine') return problem(`the genuine answer was refused with ${code}`);
    if (writes.length > 0) return problem(`refused with ${code}, yet a token set was stored`);
    const session = await agent.get('/__owner').expect(200);
    if (session.body.owner !== null) return problem(`refused with ${code}, yet the session got a token owner`);
    const me = await agent.get('/me').set('accept', 'application/json');
    if (me.status !== 401 || me.body.error !== ErrorCodes.AUTHORIZATION_REQUIRED) return problem(`refused with ${code}, then /me answered ${me.status}`);
    return;
  }
  problem(`the callback answered ${res.status} ${res.text.slice(0, 300)}`);
}

// ---------------------------------------------------------------------------

describe('token-response fuzz: every answer ends in a usable login or a typed 502', () => {
  it.each(TARGETS.map((spec) => [spec.name, spec] as const))(
    `%s: ${BODIES_PER_PROVIDER} fuzzed token answers through a real login (seed 0x${SEED.toString(16)})`,
    async (_name, spec) => {
      const target = await spec.start();
      const put = jest.spyOn(target.t.store, 'put');
      const rng = new Rng(seedFor(spec.name));
      const tally: Tally = { succeeded: 0, refreshedAtGuard: 0, expiredAtOnce: 0, refused: new Map(), problems: [] };
      try {
        for (let i = 0; i < BODIES_PER_PROVIDER; i++) await fuzzLogin(spec, target, rng, i, put, tally);
      } finally {
        put.mockRestore();
        await target.t.close();
      }
      expect(tally.problems).toEqual([]);
      const refused = [...tally.refused.values()].reduce((a, b) => a + b, 0);
      expect(tally.succeeded + refused).toBe(BODIES_PER_PROVIDER);
      // Both outcomes are exercised in earnest, not by a handful of bodies.
      expect(tally.succeeded).toBeGreaterThan(BODIES_PER_PROVIDER / 10);
      expect(refused).toBeGreaterThan(BODIES_PER_PROVIDER / 10);
      if (process.env['OAUTH_KEEPER_FUZZ_VERBOSE']) {
        const { succeeded, refreshedAtGuard, expiredAtOnce } = tally;
        console.log(spec.name, { succeeded, refreshedAtGuard, expiredAtOnce, refused: Object.fromEntries(tally.refused) });
      }
    },
    180_000,
  );
});
