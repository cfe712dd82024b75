import { useExampleApp } from '../helpers/example-app';
import { until } from '../helpers/until';

interface Status {
  user: { provider: string; id: string; displayName?: string } | null;
  providers: Record<string, { connected: boolean }>;
  events: Array<{ event: string; provider: string; reason?: string }>;
}

describe('the example app: sign in versus connect, and a refresh a visitor can see', () => {
  const start = useExampleApp();

  it('connecting di and sop keeps the cnblogs user signed in; "Expire at provider" makes the next call refresh and retry', async () => {
    // The background job is slowed down so that the refresh seen here is the visitor's own call's.
    const visitor = await start({ JOB_INTERVAL_SECONDS: '3600' });
    const { base, browser } = visitor;
    const status = () => visitor.json<Status>('/status');
    const connect = visitor.connect;

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
