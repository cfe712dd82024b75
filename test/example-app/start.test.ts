import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { utimesSync } from 'node:fs';
import { createServer } from 'node:net';
import { freePort } from '../helpers/redis-server';
import { CookieClient } from '../helpers/browser';
import { spawnUntil } from '../helpers/processes';

describe('the example app, started with the README command and no configuration', () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    // npm starts node in its own process group: stop the whole group.
    if (child?.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        child.kill('SIGTERM');
      }
    }
  });

  it("npm start's build runs only when a source changed", () => {
    const build = () => spawnSync(process.execPath, ['scripts/build-if-changed.mjs'], { encoding: 'utf8' });
    const first = build();
    expect(first.status).toBe(0);
    const second = build();
    expect(second.status).toBe(0);
    expect(second.stdout).toContain('dist/ is up to date (no rebuild)');
    // A source touched (content unchanged): an incremental rebuild, then up to date again.
    const now = new Date();
    utimesSync('src/index.ts', now, now);
    const third = build();
    expect(third.status).toBe(0);
    expect(third.stdout).toContain('sources changed, rebuilding dist/ (incremental)');
    expect(build().stdout).toContain('dist/ is up to date');
  });

  it('on a busy port, says which port and how to pick another, and exits 1', async () => {
    const busy = createServer();
    const port = await new Promise<number>((resolve) => busy.listen(0, () => resolve((busy.address() as { port: number }).port)));
    try {
      const app = spawn(process.execPath, ['example-app/start.mjs'], { env: { HOME: process.env['HOME'] ?? '/tmp', PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      app.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      app.stdout!.resume();
      const code = await new Promise<number | null>((resolve) => app.once('exit', resolve));
      expect(code).toBe(1);
      expect(stderr).toContain(`Port ${port} is already in use`);
      expect(stderr).toContain('PORT=3001 npm start');
      expect(stderr).not.toMatch(/TypeError/);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  });

  it('runs on the embedded default and completes a login', async () => {
    const port = await freePort();
    // `npm start` exactly as the README says; only PORT is set, to avoid clashing with a real app.
    const { output } = await spawnUntil('npm', ['start'], {
      env: { HOME: process.env['HOME'] ?? '/tmp', PORT: String(port) },
      ready: /listening on/,
      detached: true,
      name: 'npm start',
      onSpawn: (spawned) => (child = spawned),
    });
    expect(output()).toMatch(/notice: No REDIS_URL: sessions and tokens live in memory/);
    expect(output()).toMatch(/notice: TOKEN_KEYS is not set/);

    const base = `http://127.0.0.1:${port}`;
    const browser = new CookieClient();
    const home = await browser.fetch(`${base}/`);
    expect(home.status).toBe(200);
    expect(await home.text()).toContain('oauth-keeper example');

    const providers = Object.keys(((await (await browser.fetch(`${base}/status`)).json()) as { providers: object }).providers);
    expect(providers.length).toBeGreaterThan(0);
    const provider = providers[0]!;
    const start = await browser.fetch(`${base}/auth/${provider}?returnTo=%2F`);
    expect(start.status).toBe(302);
    // The sandbox's own login page: submit its form as a person would.
    const loginPage = await fetch(start.headers.get('location')!);
    const html = await loginPage.text();
    const action = new URL(/<form method="post" action="([^"]+)"/.exec(html)![1]!.replace(/&#38;/g, '&'), loginPage.url);
    const form = new URLSearchParams();
    for (const m of html.matchAll(/<input type="(?:hidden|text|password)" name="([^"]+)"[^>]*?value="([^"]*)"/g)) {
      form.set(m[1]!, m[2]!.replace(/&#(\d+);/g, (_, c) => String.fromCharCode(Number(c))));
    }
    form.set('decision', 'approve');
    const approved = await fetch(action, { method: 'POST', body: form, redirect: 'manual' });
    expect(approved.status).toBe(302);
    const callback = new URL(approved.headers.get('location')!);
    const done = await browser.fetch(`${base}${callback.pathname}${callback.search}`);
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toBe('/');

    const me = await browser.fetch(`${base}/me/${provider}`, { headers: { accept: 'application/json' } });
    expect(me.status).toBe(200);
    const body = (await me.json()) as Record<string, unknown>;
    expect(body['provider']).toBe(provider);
    expect(JSON.stringify(body)).not.toMatch(/access_?token|refresh_?token/i);

    const status = (await (await browser.fetch(`${base}/status`)).json()) as { providers: Record<string, { connected: boolean }> };
    expect(status.providers[provider]!.connected).toBe(true);

  });
});
