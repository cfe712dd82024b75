import { CookieClient } from '../helpers/browser';
import { approveAs } from '../helpers/browser-flow';
import { startExampleApp, type ExampleApp } from '../helpers/processes';
import { until } from '../helpers/until';

interface Status {
  user: { provider: string; id: string; displayName?: string } | null;
  providers: Record<string, { connected: boolean }>;
  events: Array<{ event: string; provider: string; reason?: string }>;
}

describe('the example app: sign in versus connect, and a refresh a visitor can see', () => {
  let example: ExampleApp | undefined;
  afterEach(() => {
    example?.child.kill('SIGTERM');
  });

  it('connecting di and sop keeps the cnblogs user signed in; "Expire at provider" makes the next call refresh and retry', async () => {
    // The background job is slowed down so that the refresh seen here is the visitor's own call's.
    example = await startExampleApp({ HOME: process.env['HOME'] ?? '/tmp', JOB_INTERVAL_SECONDS: '3600', CNBLOGS_RESPONSE_TYPE: 'code' });
    const base = `http://127.0.0.1:${example.port}`;
    const browser = new CookieClient();
    const status = async () => (await (await browser.fetch(`${base}/status`, { headers: { accept: 'application/json' } })).json()) as Status;
    const connect = async (provider: string) => {
      const start = await browser.fetch(`${base}/auth/${provider}?returnTo=%2F`);
      const approved = await approveAs(start.headers.get('location')!, { username: 'alice', password: 'wonderland' });
      const callback = new URL(approved.location!);
      expect((await browser.fetch(`${base}${callback.pathname}${callback.search}`)).status).toBe(303);
    };

    const home = await (await browser.fetch(`${base}/`)).text();
    expect(home).toMatch(/>Sign in<\/a>/);
    expect(home).toMatch(/>Connect<\/a>/);
    expect(home).toContain('Expire at provider');

    // Connecting a data source signs nobody in.
    await connect('di');
    expect((await status()).user).toBeNull();
    await connect('cnblogs');
    const signedIn = (await status()).user;
    expect(signedIn).toMatchObject({ provider: 'cnblogs' });
    expect(signedIn!.displayName).toBeTruthy();
    await connect('sop');
    const after = await status();
    expect(after.user).toEqual(signedIn);
    expect(Object.values(after.providers).every((p) => p.connected)).toBe(true);

    // The sandbox forgets di's access token: the proxied call is refused upstream, refreshed and retried once.
    expect((await browser.fetch(`${base}/sandbox/di/expire`, { method: 'POST', headers: { origin: base } })).status).toBe(204);
    const call = await browser.fetch(`${base}/api/di/patent/search/expression?express=x&page=1&page_row=1`, { headers: { accept: 'application/json' } });
    expect(call.status).toBe(200);
    await until(async () => (await status()).events.some((e) => e.event === 'refresh:success' && e.provider === 'di'), 'a di refresh in the events');
    const events = (await status()).events.filter((e) => e.provider === 'di');
    expect(events).toEqual(expect.arrayContaining([expect.objectContaining({ event: 'refresh:start', reason: 'rejected' }), expect.objectContaining({ event: 'refresh:success' })]));
    // Cross-origin posts to the sandbox control are refused.
    expect((await browser.fetch(`${base}/sandbox/di/expire`, { method: 'POST', headers: { origin: 'https://evil.example' } })).status).toBe(403);
  });
});
