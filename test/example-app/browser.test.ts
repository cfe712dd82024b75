import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { repoRoot as root, startExampleApp } from '../helpers/processes';

const artifacts = join(root, 'test-artifacts');
const CHROMIUM = '/usr/bin/chromium';

interface RunningApp {
  child: ChildProcess;
  /** Opened as `localhost` while the sandboxes live on 127.0.0.1: the provider is a different site, as in real life. */
  url: string;
}

async function startApp(env: Record<string, string> = {}): Promise<RunningApp> {
  const { child, port } = await startExampleApp(env);
  return { child, url: `http://localhost:${port}` };
}

/** Connect → log in on the provider's own page → connected → call the API → screenshot → disconnect. */
async function connectCallDisconnect(page: Page, app: RunningApp, provider: string, shot: string): Promise<void> {
  await page.goto(`${app.url}/`);
  await page.waitForSelector('body[data-ready="1"]');
  const card = page.locator(`section.card[data-provider="${provider}"]`);
  await expectText(card.locator('[data-role=state]'), 'not connected');

  await card.locator('[data-role=connect]').click();
  await page.waitForSelector('#approve'); // the sandbox provider's own login page
  expect(new URL(page.url()).hostname).toBe('127.0.0.1');
  await page.click('#approve');
  await page.waitForURL(`${app.url}/`);
  await page.waitForSelector('body[data-ready="1"]');
  await expectText(card.locator('[data-role=state]'), 'connected');
  expect(await card.locator('[data-role=expiry]').textContent()).toMatch(/Token (expires in|never expires)/);

  await card.locator('[data-role=call]').click();
  const answer = card.locator('[data-role=answer]');
  await answer.waitFor({ state: 'visible' });
  expect(await answer.getAttribute('data-status')).toBe('200');
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, `${shot}.png`), fullPage: true });

  await card.locator('[data-role=disconnect]').click();
  await expectText(card.locator('[data-role=state]'), 'not connected');
}

async function expectText(locator: ReturnType<Page['locator']>, text: string): Promise<void> {
  await locator.filter({ hasText: new RegExp(`^${text}$`) }).waitFor();
}

describe('the example app in a real headless Chromium', () => {
  let browser: Browser;
  const apps: RunningApp[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (bash .ci/run does).`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    for (const app of apps) app.child.kill('SIGTERM');
  });

  async function freshPage(): Promise<Page> {
    const context = await browser.newContext();
    return context.newPage();
  }

  it('di: connect, log in on the sandbox, call the API, disconnect', async () => {
    const app = await startApp();
    apps.push(app);
    await connectCallDisconnect(await freshPage(), app, 'di', 'home-di');
  });

  it('sop: connect, log in on the sandbox, call the gateway, disconnect', async () => {
    const app = await startApp();
    apps.push(app);
    await connectCallDisconnect(await freshPage(), app, 'sop', 'home-sop');
  });

  it.each([
    ['code', 'query'],
    ['code id_token', 'form_post'],
    ['code id_token', 'fragment'],
  ])('cnblogs with response_type=%s, response_mode=%s', async (responseType, responseMode) => {
    const app = await startApp({ CNBLOGS_RESPONSE_TYPE: responseType, CNBLOGS_RESPONSE_MODE: responseMode });
    apps.push(app);
    await connectCallDisconnect(await freshPage(), app, 'cnblogs', `home-cnblogs-${responseMode}`);
  });

  it('keeps every provider connected side by side, then logs out', async () => {
    const app = await startApp();
    apps.push(app);
    const page = await freshPage();
    for (const provider of ['di', 'cnblogs', 'sop']) {
      await page.goto(`${app.url}/auth/${provider}?returnTo=%2F`);
      await page.click('#approve');
      await page.waitForURL(`${app.url}/`);
    }
    await page.waitForSelector('body[data-ready="1"]');
    for (const provider of ['di', 'cnblogs', 'sop']) {
      await expectText(page.locator(`section.card[data-provider="${provider}"] [data-role=state]`), 'connected');
    }
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'home-all-connected.png'), fullPage: true });
    await page.click('#logout');
    await page.waitForURL(`${app.url}/`);
    await page.waitForSelector('body[data-ready="1"]');
    for (const provider of ['di', 'cnblogs', 'sop']) {
      await expectText(page.locator(`section.card[data-provider="${provider}"] [data-role=state]`), 'not connected');
    }
  });
});
