import { useExampleApp } from '../helpers/example-app';
import { until } from '../helpers/until';

interface JobStatus {
  job: { at: string; calls: Record<string, { status?: number; error?: string }> } | null;
}

describe('the example app\'s background job', () => {
  const start = useExampleApp();

  it('calls every connected provider\'s API for the account every few seconds, without the browser, and the page shows it', async () => {
    const visitor = await start({ JOB_INTERVAL_SECONDS: '0.5' });
    const { base, browser } = visitor;
    const status = () => visitor.json<JobStatus>('/status');
    expect((await status()).job).toBeNull();

    for (const provider of ['di', 'cnblogs', 'sop']) await visitor.connect(provider);
    // The browser only reads /status from here on: the calls are the job's.
    await until(async () => Object.keys((await status()).job?.calls ?? {}).length === 3, 'a job run over all three providers');
    expect((await status()).job!.calls).toEqual({ di: expect.objectContaining({ status: 200 }), cnblogs: expect.objectContaining({ status: 200 }), sop: expect.objectContaining({ status: 200 }) });
    const home = await (await browser.fetch(`${base}/`)).text();
    expect(home).toContain('Background job');
  });
});
