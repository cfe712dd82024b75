import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix } from 'node:path';
import { startOAuth2Sandbox, type RunningSandbox } from '../src/sandbox/index';
import { freePort } from './helpers/redis-server';
import { testRedisPort } from './helpers/app';
import { CookieClient } from './helpers/browser';

const root = join(__dirname, '..');

function quickStart(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const match = /<!-- quick-start[^>]*-->\s*```js\n([\s\S]*?)```/.exec(readme);
  if (!match) throw new Error('README.md has no <!-- quick-start --> js block');
  return match[1]!;
}

/** What npm prints when it cannot reach the registry (and has no copy in its cache). */
const REGISTRY_UNREACHABLE = /npm error (code (ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|ENETUNREACH|EHOSTUNREACH|ENOTCACHED)\b|network )/;

/**
 * The path of a Node binary of another major version, installed from the npm registry's
 * `node` package (npx caches it). With no registry and no cached copy it answers why,
 * unless under CI, where the version matrix must run: there it throws.
 */
function nodeBinary(major: string): string | { unreachable: string } {
  let path: string;
  try {
    path = execFileSync('npx', ['-y', `node@${major}`, '-p', 'process.execPath'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, npm_config_fetch_retries: '0' },
    }).trim();
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? '');
    const reason = REGISTRY_UNREACHABLE.exec(stderr);
    if (process.env['CI'] || !reason) throw error;
    return { unreachable: reason[0] };
  }
  const version = execFileSync(path, ['--version'], { encoding: 'utf8' }).trim();
  expect(version.startsWith(`v${major}.`)).toBe(true);
  return path;
}

function installedVersion(name: string): string {
  return (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

const PEERS = ['express', 'express-session', 'passport', 'connect-redis', 'ioredis'];
/** The types a TypeScript user has for the packages they use themselves: Node's and the peers'. */
const USER_TYPES = ['@types/node', '@types/express', '@types/express-session', '@types/passport'];

/**
 * A user's project in `dir`: the tarball and the given packages, at the versions this
 * repository has (so that npm finds them in its cache), and nothing else — no dev
 * dependency of this package.
 */
function installPacked(tarball: string, dir: string, packages: string[]): void {
  copyFileSync(tarball, join(dir, basename(tarball)));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'user-app', private: true, type: 'module' }));
  const specs = packages.map((n) => (n.slice(1).includes('@') ? n : `${n}@${installedVersion(n)}`));
  execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', `./${basename(tarball)}`, ...specs], { cwd: dir, stdio: 'pipe' });
}

/** The entry points package.json exports, as a user imports them: oauth-keeper, oauth-keeper/sandbox, ... */
function exportedEntries(): string[] {
  const { exports } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
  return Object.keys(exports)
    .filter((key) => key !== './package.json')
    .map((key) => posix.join('oauth-keeper', key));
}

/** Runs the TypeScript compiler in `dir`; its output, empty when the compile succeeds. */
function tsc(dir: string, args: string[]): string {
  try {
    execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), ...args], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
    return '';
  } catch (error) {
    return String((error as { stdout?: string }).stdout || error);
  }
}

describe('the packed package, installed as users install it', () => {
  let packDir: string;
  let tarball: string;
  let tarballFiles: string;
  let dir: string;
  let sandbox: RunningSandbox;
  let app: ChildProcess | undefined;

  beforeAll(async () => {
    packDir = mkdtempSync(join(tmpdir(), 'oauth-keeper-pack-'));
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', packDir], { cwd: root, stdio: 'pipe' });
    tarball = join(packDir, readdirSync(packDir).find((f) => f.endsWith('.tgz'))!);
    expect(basename(tarball)).toMatch(/^oauth-keeper-.*\.tgz$/);
    tarballFiles = join(packDir, 'files');
    mkdirSync(tarballFiles);
    execFileSync('tar', ['-xzf', tarball, '-C', tarballFiles]);
    sandbox = await startOAuth2Sandbox({ autoApprove: true });
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'oauth-keeper-app-'));
  });

  afterEach(() => {
    app?.kill('SIGTERM');
    app = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  afterAll(async () => {
    await sandbox.close();
    rmSync(packDir, { recursive: true, force: true });
  });

  it('ships the build, the README and the LICENSE, and no source map or declaration map (src/ is not shipped)', () => {
    const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
    for (const file of ['package/LICENSE', 'package/README.md', 'package/package.json', 'package/dist/esm/index.js', 'package/dist/cjs/index.d.ts']) {
      expect(listing).toContain(file);
    }
    expect(readFileSync(join(tarballFiles, 'package/LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) 2026 oauth-keeper contributors\n/);
    expect(listing.filter((f) => /^package\/(src|test)\//.test(f))).toEqual([]);
    // The choice: no maps. Should maps come back, each must point at files the tarball has.
    expect(listing.filter((f) => f.endsWith('.map'))).toEqual([]);
    const dangling: string[] = [];
    for (const file of listing.filter((f) => /\.(js|d\.ts)$/.test(f))) {
      const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(join(tarballFiles, file), 'utf8'))?.[1];
      if (url && !existsSync(join(tarballFiles, dirname(file), url))) dangling.push(`${file} → ${url}`);
    }
    expect(dangling).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(tarballFiles, 'package/package.json'), 'utf8')) as Record<string, unknown>;
    expect(pkg).toMatchObject({
      license: 'MIT',
      homepage: expect.stringMatching(/^https:\/\/github\.com\/oauth-keeper\/oauth-keeper/),
      repository: { type: 'git', url: expect.stringContaining('github.com/oauth-keeper/oauth-keeper') },
      bugs: { url: 'https://github.com/oauth-keeper/oauth-keeper/issues' },
    });
  });

  it('compiles against its types from the install alone: ESM (nodenext) and CommonJS (module commonjs, moduleResolution node), strict, skipLibCheck false', () => {
    // Only this package's dependencies, its peers and the types a user has for what they use
    // themselves: a type the .d.ts files need from a dev dependency fails here (TS7016).
    installPacked(tarball, dir, [...PEERS, ...USER_TYPES]);
    for (const file of ['usage.ts', 'esm.mts', 'node10.ts']) copyFileSync(join(root, 'test/types', file), join(dir, file));
    // Both entry files import every entry point package.json exports.
    for (const file of ['esm.mts', 'node10.ts']) {
      const imported = [...readFileSync(join(dir, file), 'utf8').matchAll(/from '(oauth-keeper[^']*)'/g)].map((m) => m[1]);
      expect([...new Set(imported)].sort()).toEqual(exportedEntries().sort());
    }
    const strict = ['--noEmit', '--strict', '--exactOptionalPropertyTypes', '--skipLibCheck', 'false', '--target', 'ES2022', '--esModuleInterop', '--types', 'node'];
    // With the target's default lib (DOM included), and with no DOM: fetch's types then come from @types/node.
    expect(tsc(dir, [...strict, '--module', 'nodenext', '--moduleResolution', 'nodenext', 'usage.ts', 'esm.mts'])).toBe('');
    expect(tsc(dir, [...strict, '--lib', 'es2023', '--module', 'commonjs', '--moduleResolution', 'node', 'usage.ts', 'node10.ts'])).toBe('');
  }, 180_000); // two full compiles with every .d.ts checked: some 40 s on two cores

  // Express 5 is what the tests run on; 4.21 is the oldest Express this package supports. The Node
  // versions come from the npm registry's `node` package: the machine's own Node is 20. Without a
  // registry (and no cached copy) a local run leaves out Node 22 and 24 and says so; CI never does.
  it.each([
    ['5', '20 (this machine)', undefined],
    ['4.21', '20 (this machine)', '4.21.2'],
    ['5', '22', undefined],
    ['5', '24', undefined],
  ])('packs, installs with its peers (Express %s), and runs the README quick start on Node %s against a local provider', async (_express, nodeVersion, expressVersion) => {
    const node = nodeVersion.endsWith('(this machine)') ? process.execPath : nodeBinary(nodeVersion);
    if (typeof node !== 'string') {
      console.warn(`Not run: the quick start on Node ${nodeVersion}, whose binary comes from the npm registry, which is unreachable (${node.unreachable.trim()}). CI runs it.`);
      expect(process.env['CI']).toBeFalsy();
      return;
    }
    installPacked(tarball, dir, PEERS.map((n) => (n === 'express' && expressVersion ? `express@${expressVersion}` : n)));
    writeFileSync(join(dir, 'app.mjs'), quickStart());

    const port = await freePort();
    app = spawn(node, ['app.mjs'], {
      cwd: dir,
      env: {
        PATH: process.env['PATH'] ?? '',
        PORT: String(port),
        OAUTH_ISSUER: sandbox.url,
        REDIS_URL: `redis://127.0.0.1:${testRedisPort()}`,
        TOKEN_KEYS: randomBytes(32).toString('base64'),
        SESSION_SECRET: randomBytes(16).toString('hex'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    app.stderr!.on('data', (d) => (stderr += String(d)));
    await new Promise<void>((resolve, reject) => {
      app!.stdout!.on('data', (d) => String(d).includes('listening') && resolve());
      app!.once('exit', (code) => reject(new Error(`quick start exited with ${code}: ${stderr}`)));
    });

    const base = `http://127.0.0.1:${port}`;
    const browser = new CookieClient();
    const json = { headers: { accept: 'application/json' } };
    expect((await browser.fetch(`${base}/me`, json)).status).toBe(401);
    const start = await browser.fetch(`${base}/auth/example?returnTo=/me`);
    expect(start.status).toBe(302);
    const atProvider = await fetch(start.headers.get('location')!, { redirect: 'manual' });
    const callback = new URL(atProvider.headers.get('location')!);
    const done = await browser.fetch(`${base}${callback.pathname}${callback.search}`);
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toBe('/me');
    const me = await browser.fetch(`${base}/me`, json);
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ provider: 'example', scope: 'read', user: { provider: 'example', id: '1001' } });
  });
});
