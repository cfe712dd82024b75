/**
 * Every code example of README.md and docs/ is executed or compiled, so none rots silently.
 *
 * A ```ts or ```js block carries a marker — an HTML comment on the line(s) right before it:
 *
 * - `<!-- example: run -->` runs the block with Node (a ts block is compiled first, and also
 *   type-checked): it must exit 0. With `login=<provider> get=<path>` the block is a server: it
 *   must print `listening on <url>`; the test signs in through that provider's login route at
 *   the sandbox the block started itself (alice / wonderland), follows the answer back (query,
 *   fragment or form_post), GETs `<path>` and wants 200 with JSON. `logout` then posts
 *   `/logout` and wants the browser back on `/`, answered 200. Then the process is killed.
 * - `<!-- example: typecheck -->` compiles the block against the built package (strict
 *   TypeScript; a js block with checkJs). `with=app,keeper,...` declares names a snippet
 *   uses but does not define (see PRELUDE).
 * - `<!-- quick-start: ... -->` is the quick start, which test/pack.test.ts also runs from the
 *   packed package, on each Node version, against Redis; it carries a run marker as well.
 *
 * The blocks are written under `.tmp/` of this repository, so `oauth-keeper` resolves to this
 * package itself (its `exports`, i.e. the build: `npm test` builds first).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { CookieBrowser, deliverCallback, parseForm, type Answer } from './helpers/browser-flow';
import { freePort } from './helpers/redis-server';

const root = join(__dirname, '..');

interface Example {
  /** README.md, docs/providers/di.md, ... */
  doc: string;
  /** 1-based line of the block's first code line in the document. */
  line: number;
  lang: 'ts' | 'js';
  code: string;
  marker: Marker | undefined;
}

interface Marker {
  mode: 'run' | 'typecheck';
  login?: string;
  get?: string;
  logout: boolean;
  with: string[];
}

const CODE_LANGS: Record<string, 'ts' | 'js'> = { ts: 'ts', typescript: 'ts', mts: 'ts', js: 'js', javascript: 'js', mjs: 'js' };

/** README.md and every markdown file under docs/ (not the generated docs/api). */
function documents(): string[] {
  const out = ['README.md'];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory() && path !== 'docs/api') walk(path);
      else if (entry.isFile() && entry.name.endsWith('.md')) out.push(path);
    }
  };
  if (existsSync(join(root, 'docs'))) walk('docs');
  return out.sort();
}

function parseMarker(comments: string[]): Marker | undefined {
  for (const comment of comments) {
    const m = /^<!--\s*example:\s*(run|typecheck)\b(.*?)-->$/.exec(comment);
    if (!m) continue;
    const words = m[2]!.trim().split(/\s+/).filter(Boolean);
    const attr = (name: string) => words.find((w) => w.startsWith(`${name}=`))?.slice(name.length + 1);
    const marker: Marker = { mode: m[1] as Marker['mode'], logout: words.includes('logout'), with: attr('with')?.split(',') ?? [] };
    const login = attr('login');
    const get = attr('get');
    if (login !== undefined) marker.login = login;
    if (get !== undefined) marker.get = get;
    return marker;
  }
  return undefined;
}

/** The fenced code blocks of a document, with the HTML comments on the lines right before each. */
function examplesOf(doc: string): Example[] {
  const lines = readFileSync(join(root, doc), 'utf8').split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,})(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    let end = i + 1;
    while (end < lines.length && !new RegExp(`^\\s*${fence}\\s*$`).test(lines[end]!)) end++;
    const comments: string[] = [];
    for (let j = i - 1; j >= 0 && /^\s*<!--.*-->\s*$/.test(lines[j]!); j--) comments.unshift(lines[j]!.trim());
    const kind = CODE_LANGS[lang!.toLowerCase()];
    if (kind) {
      const code = lines
        .slice(i + 1, end)
        .map((l) => (l.startsWith(indent!) ? l.slice(indent!.length) : l))
        .join('\n');
      out.push({ doc, line: i + 2, lang: kind, code, marker: parseMarker(comments) });
    }
    i = end;
  }
  return out;
}

const examples = documents().flatMap(examplesOf);
const name = (e: Example) => `${e.doc}:${e.line}`;

/**
 * Names a snippet may use without defining them (`with=app,keeper`): the things the README's
 * sections build once and then only use. Types only; such snippets are compiled, never run.
 */
const PRELUDE = `import type { Express, RequestHandler } from 'express';
import type { PassportStatic } from 'passport';
import type { Redis } from 'ioredis';
import type { AnyVerifyFunction, CnblogsStrategy, DiStrategy, Keeper, OAuthKeeperStrategy, SopStrategy, TokenStore } from 'oauth-keeper';
export declare const app: Express;
export declare const keeper: Keeper;
export declare const passport: PassportStatic;
export declare const store: TokenStore;
export declare const redis: Redis;
export declare const handler: RequestHandler;
export declare const di: DiStrategy;
export declare const cnblogs: CnblogsStrategy;
export declare const sop: SopStrategy;
export declare const strategies: OAuthKeeperStrategy[];
export declare const verify: AnyVerifyFunction;
export declare const log: { warn(fields: object, message: string): void };
export declare const metrics: { increment(name: string, tags?: object): void; histogram(name: string, value: number): void };
`;

/** A worker's "your app's own modules", for the worker example in README.md. */
const APP_CONFIG = `import type { CnblogsOptions, SopOptions } from 'oauth-keeper';
export declare const strategyOptions: { cnblogs: CnblogsOptions; sop: SopOptions };
export declare function usersToSync(): Promise<string[]>;
export declare function markNeedsReconnect(userId: string | null, provider: string): void;
`;

let dir: string;
/** Example file name (in `dir`) → the example and how many lines were put before its code. */
const files = new Map<string, { example: Example; prefix: number }>();

function fileOf(example: Example): string {
  return `${example.doc.replace(/[^A-Za-z0-9]+/g, '_')}_L${example.line}.${example.lang === 'ts' ? 'mts' : 'mjs'}`;
}

/** tsc's messages with each example file's position turned back into the document's. */
function mapDiagnostics(output: string): string {
  return output.replace(/([\w.-]+\.m[tj]s)\((\d+),(\d+)\)/g, (all, file: string, line: string, column: string) => {
    const entry = files.get(file);
    return entry ? `${entry.example.doc}:${entry.example.line + Number(line) - 1 - entry.prefix}:${column}` : all;
  });
}

beforeAll(() => {
  expect(existsSync(join(root, 'dist/esm/index.js'))).toBe(true); // `npm test` builds first
  mkdirSync(join(root, '.tmp'), { recursive: true });
  dir = join(root, '.tmp', `examples-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  writeFileSync(join(dir, 'prelude.d.mts'), PRELUDE);
  writeFileSync(join(dir, 'app-config.d.mts'), APP_CONFIG);
  for (const example of examples) {
    if (!example.marker) continue;
    const names = example.marker.with;
    const head = names.length > 0 ? `import { ${names.join(', ')} } from './prelude.mjs';\n` : '';
    const file = fileOf(example);
    // `export {}` makes every block a module of its own, so blocks never see each other's names.
    writeFileSync(join(dir, file), `${head}${example.code}\nexport {};\n`);
    files.set(file, { example, prefix: head ? 1 : 0 });
  }
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2023', 'DOM'],
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        allowJs: true,
        checkJs: true,
        noEmit: true,
        skipLibCheck: true,
        esModuleInterop: true,
        types: ['node', 'express-session', 'passport'],
        typeRoots: [join(root, 'node_modules/@types')],
      },
      include: ['*.mts', '*.mjs', '*.d.mts'],
    }),
  );
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the examples of README.md and docs/', () => {
  it('are found, and every ts/js block is marked run or typecheck', () => {
    expect(examples.length).toBeGreaterThan(10);
    const unmarked = examples.filter((e) => !e.marker).map(name);
    expect(unmarked).toEqual([]);
    // A marked server names a login and a page; a snippet with a prelude is only compiled.
    for (const e of examples) {
      if (e.marker?.mode === 'run') expect([name(e), e.marker.with]).toEqual([name(e), []]);
      if (e.marker?.login !== undefined || e.marker?.logout) expect([name(e), e.marker.mode, typeof e.marker.get]).toEqual([name(e), 'run', 'string']);
    }
    // The quick start is run here and by test/pack.test.ts.
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    expect(readme).toMatch(/<!-- example: run [^>]*-->\n<!-- quick-start[^>]*-->\s*```js\n/);
  });

  it('compile: strict TypeScript, and the js blocks with checkJs', () => {
    let output = '';
    try {
      execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
    } catch (error) {
      output = String((error as { stdout?: string }).stdout || error);
    }
    expect(mapDiagnostics(output)).toBe('');
  }, 120_000);

  const runnable = examples.filter((e) => e.marker?.mode === 'run');

  it.each(runnable.map((e) => [name(e), e] as const))('%s runs', async (_name, example) => {
    const marker = example.marker!;
    let file = fileOf(example);
    if (example.lang === 'ts') {
      const js = ts.transpileModule(readFileSync(join(dir, file), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
      }).outputText;
      file = file.replace(/\.mts$/, '.run.mjs');
      writeFileSync(join(dir, file), js);
    }
    const port = await freePort();
    // Nothing of the test's environment (its Redis, CI variables): the example's own defaults.
    const child = spawn(process.execPath, [file], { cwd: dir, env: { PATH: process.env['PATH'] ?? '', PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += String(d)));
    child.stderr.on('data', (d) => (output += String(d)));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      if (marker.login === undefined) {
        const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000).unref())]);
        expect({ example: name(example), code, output }).toEqual({ example: name(example), code: 0, output: expect.any(String) });
        return;
      }
      const url = await new Promise<string>((resolve, reject) => {
        const look = () => {
          const m = /listening on (http:\/\/\S+)/.exec(output);
          if (m) resolve(m[1]!.replace(/\/$/, ''));
        };
        child.stdout.on('data', look);
        void exited.then((code) => reject(new Error(`${name(example)} exited with ${code} before listening:\n${output}`)));
        setTimeout(() => reject(new Error(`${name(example)} printed no "listening on <url>" within 20 s:\n${output}`)), 20_000).unref();
      });
      await signIn(url, marker.login, marker.get!, output);
      const browser = browsers.get(url)!;
      const page = await browser.visit(`${url}${marker.get}`);
      expect({ example: name(example), status: page.status, text: page.text }).toEqual({ example: name(example), status: 200, text: expect.any(String) });
      expect(() => JSON.parse(page.text) as unknown).not.toThrow();
      if (marker.logout) {
        const out = await browser.visit(`${url}/logout`, { method: 'POST', headers: { accept: 'text/html', origin: new URL(url).origin } });
        expect([out.status, out.location]).toEqual([303, '/']);
        const home = await browser.visit(`${url}/`, { headers: { accept: 'text/html' } });
        expect(home.status).toBe(200);
        // Signed out: the guarded page answers 401 again.
        expect((await browser.visit(`${url}${marker.get}`)).status).toBe(401);
      }
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }, 90_000);
});

const browsers = new Map<string, CookieBrowser>();

/** Signs in at `url` through `provider`'s login route, at the sandbox the example started, as alice. */
async function signIn(url: string, provider: string, returnTo: string, output: string): Promise<void> {
  const browser = new CookieBrowser();
  browsers.set(url, browser);
  const start = await browser.visit(`${url}/auth/${provider}?returnTo=${encodeURIComponent(returnTo)}`, { headers: { accept: 'text/html' } });
  if (start.status !== 302 || !start.location) throw new Error(`GET /auth/${provider} answered ${start.status}: ${start.text}\n${output}`);
  const atProvider = new CookieBrowser();
  let answer: Answer = await atProvider.visit(start.location, { headers: { accept: 'text/html' } });
  if (answer.status === 200 && /name="password"/.test(answer.text)) {
    const form = parseForm(answer.text);
    const action = new URL(form.action, start.location);
    answer = await atProvider.visit(action, { form: { ...form.fields, username: 'alice', password: 'wonderland', decision: 'approve' } });
  }
  const mode = answer.status === 200 ? 'form_post' : answer.location?.includes('#') ? 'fragment' : 'query';
  const done = await deliverCallback(browser, answer, mode, url);
  if (done.status !== 303 || done.location !== returnTo) throw new Error(`the ${provider} callback answered ${done.status} ${done.location ?? ''}: ${done.text}\n${output}`);
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(doc: string): Set<string> {
  const text = readFileSync(join(root, doc), 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  return new Set([...text.matchAll(/^#+ (.*)$/gm)].map((m) => slug(m[1]!)));
}

describe('the links of README.md and docs/', () => {
  it('point at files that exist and headings that exist', () => {
    const broken: string[] = [];
    for (const doc of documents()) {
      const text = readFileSync(join(root, doc), 'utf8').replace(/^```[\s\S]*?^```/gm, '');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue; // http(s), mailto
        const [path, anchor] = target!.split('#') as [string, string | undefined];
        const file = path === '' ? doc : relative(root, join(root, doc, '..', path));
        if (!existsSync(join(root, file))) broken.push(`${doc}: ${target} (no file ${file})`);
        else if (anchor !== undefined && file.endsWith('.md') && !anchorsOf(file).has(anchor)) broken.push(`${doc}: ${target} (no heading)`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe('the API reference', () => {
  it('builds from the TSDoc with TypeDoc, without a warning (npm run docs writes it to docs/api/)', () => {
    let output = '';
    try {
      execFileSync(process.execPath, [join(root, 'node_modules/typedoc/bin/typedoc'), '--emit', 'none', '--treatWarningsAsErrors'], {
        cwd: root,
        encoding: 'utf8',
        stdio: 'pipe',
      });
    } catch (error) {
      const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
      output = `${stdout}${stderr}` || String(error);
    }
    expect(output.replace(/\x1b\[[0-9;]*m/g, '')).toBe('');
    // Every subpath export is an entry point of the reference.
    const { exports } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, { import?: { default?: string } }> };
    const { entryPoints } = JSON.parse(readFileSync(join(root, 'typedoc.json'), 'utf8')) as { entryPoints: string[] };
    const sources = Object.values(exports)
      .map((e) => (typeof e === 'object' ? e.import?.default : undefined))
      .filter((p): p is string => p !== undefined)
      .map((p) => relative(root, join(root, p.replace(/^\.\/dist\/esm\//, 'src/').replace(/\.js$/, '.ts'))));
    expect([...entryPoints].sort()).toEqual(sources.sort());
  }, 120_000);
});
