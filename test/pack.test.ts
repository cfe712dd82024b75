import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** The path of a Node binary of another major version, installed from the npm registry's `node` package. */
function nodeBinary(major: string): string {
  const path = execFileSync('npx', ['-y', `node@${major}`, '-p', 'process.execPath'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  const version = execFileSync(path, ['--version'], { encoding: 'utf8' }).trim();
  expect(version.startsWith(`v${major}.`)).toBe(true);
  return path;
}

function installedVersion(name: string): string {
  return (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

describe('the packed package, installed as users install it', () => {
  let packDir: string;
  let dir: string;
  let sandbox: RunningSandbox;
  let app: ChildProcess | undefined;

  beforeAll(async () => {
    packDir = mkdtempSync(join(tmpdir(), 'oauth-keeper-pack-'));
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', packDir], { cwd: root, stdio: 'pipe' });
    sandbox = await startOAuth2Sandbox({ autoApprove: true });
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

  // Express 5 is what the tests run on; 4.21 is the oldest Express this package supports. The Node
  // versions come from the npm registry's `node` package: the machine's own Node is 20.
  it.each([
    ['5', '20 (this machine)', undefined],
    ['4.21', '20 (this machine)', '4.21.2'],
    ['5', '22', undefined],
    ['5', '24', undefined],
  ])('packs, installs with its peers (Express %s), and runs the README quick start on Node %s against a local provider', async (_express, nodeVersion, expressVersion) => {
    const node = nodeVersion.endsWith('(this machine)') ? process.execPath : nodeBinary(nodeVersion);
    dir = mkdtempSync(join(tmpdir(), 'oauth-keeper-app-'));
    for (const f of readdirSync(packDir)) execFileSync('cp', [join(packDir, f), dir]);
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
    expect(tarball).toMatch(/^oauth-keeper-.*\.tgz$/);
    const listing = execFileSync('tar', ['-tzf', join(dir, tarball)], { encoding: 'utf8' });
    expect(listing).toContain('package/dist/esm/index.js');
    expect(listing).toContain('package/dist/cjs/index.d.ts');
    expect(listing).not.toMatch(/package\/(src|test)\//);

    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'quick-start-app', private: true, type: 'module' }));
    const peers = ['express', 'express-session', 'passport', 'connect-redis', 'ioredis'].map((n) =>
      n === 'express' && expressVersion ? `express@${expressVersion}` : `${n}@${installedVersion(n)}`,
    );
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', `./${tarball}`, ...peers], {
      cwd: dir,
      stdio: 'pipe',
    });
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
