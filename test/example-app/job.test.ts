import { CookieClient } from '../helpers/browser';
import { approveAs } from '../helpers/browser-flow';
import { startExampleApp, type ExampleApp } from '../helpers/processes';
import { until } from '../helpers/until';

interface JobStatus {
  job: { at: string; calls: Record<string, { status?: number; error?: string }> } | null;
}

describe('the example app\'s background job', () => {
  let example: ExampleApp | undefined;
  afterEach(() => {
    example?.child.kill('SIGTERM');
  });

  it('calls every connected provider\'s API for the account every few seconds, without the browser, and the page shows it', async () => {
    example = await startExampleApp({ HOME: process.env['HOME'] ?? '/tmp', JOB_INTERVAL_SECONDS: '0.5', CNBLOGS_RESPONSE_TYPE: 'code' });
    const base = `http://127.0.0.1:${example.port}`;
    const browser = new CookieClient();
    const status = async () => (await (await browser.fetch(`${base}/status`)).json()) as JobStatus;
    expect((await status()).job).toBeNull();

    for (const provider of ['di', 'cnblogs', 'sop']) {
      const start = await browser.fetch(`${base}/auth/${provider}?returnTo=%2F`);
      expect(start.status).toBe(302);
      const approved = await approveAs(start.headers.get('location')!, { username: 'alice', password: 'wonderland' });
      const callback = new URL(approved.location!);
      expect((await browser.fetch(`${base}${callback.pathname}${callback.search}`)).status).toBe(303);
    }
    // The browser only reads /status from here on: the calls are the job's.
    await until(async () => Object.keys((await status()).job?.calls ?? {}).length === 3, 'a job run over all three providers');
    expect((await status()).job!.calls).toEqual({ di: expect.objectContaining({ status: 200 }), cnblogs: expect.objectContaining({ status: 200 }), sop: expect.objectContaining({ status: 200 }) });
    const home = await (await browser.fetch(`${base}/`)).text();
    expect(home).toContain('Background job');
  });
});
