import { ErrorCodes, TELEMETRY_INSTRUMENTS } from '../../src/index';
import { useExampleApp } from '../helpers/example-app';

/**
 * The example app's GET /metrics (prom-client, fed by the keeper's `telemetry`): after a
 * sign-in, a connect and a proxied call, the scrape has every instrument under its
 * Prometheus name with the counts those made — and every label value comes from a small
 * fixed set, so no token, code, state, session id or user id can appear in it.
 */

/** The Prometheus name of an instrument: dots to underscores, `_seconds` for seconds, `_total` for counters. */
const promName = (i: (typeof TELEMETRY_INSTRUMENTS)[number]) => `${i.name.replace(/\./g, '_')}${i.unit === 's' ? '_seconds' : ''}${i.kind === 'counter' ? '_total' : ''}`;

const ALLOWED_LABEL_VALUE = new RegExp(
  '^(?:' +
    [
      'di|cnblogs|sop',
      'success|refused|fault|failure|refreshed-elsewhere|acquired|timeout',
      '[1-5]xx|none|true|false|aborted|unexpected',
      'read|write|touch|remove|error',
      ...Object.values(ErrorCodes),
      // Histogram bucket bounds.
      '[0-9.]+|\\+Inf',
    ].join('|') +
    ')$',
);

describe('the example app: GET /metrics', () => {
  const start = useExampleApp();

  it('counts a sign-in, a connect and a proxied call, and shows nothing that identifies anyone', async () => {
    const visitor = await start({ JOB_INTERVAL_SECONDS: '3600' });
    const { base, browser } = visitor;
    const seen: string[] = [];
    const connect = async (provider: string) => {
      const callback = await visitor.connect(provider);
      seen.push(callback.searchParams.get('code')!, callback.searchParams.get('state')!);
    };
    await connect('cnblogs');
    await connect('di');
    const call = await browser.fetch(`${base}/api/di/patent/search/expression?express=x&page=1&page_row=1`, { headers: { accept: 'application/json' } });
    expect(call.status).toBe(200);
    await call.arrayBuffer();
    const status = (await (await browser.fetch(`${base}/status`)).json()) as { user: { id: string; displayName: string } };

    const scrape = await browser.fetch(`${base}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await scrape.text();

    for (const instrument of TELEMETRY_INSTRUMENTS) expect(text).toContain(`# TYPE ${promName(instrument)} ${instrument.kind}`);
    expect(text).toMatch(/^oauth_keeper_logins_total\{provider="cnblogs",outcome="success"\} 1$/m);
    expect(text).toMatch(/^oauth_keeper_logins_total\{provider="di",outcome="success"\} 1$/m);
    expect(text).toMatch(/^oauth_keeper_api_calls_total\{provider="di",status_class="2xx",retried="false"\} 1$/m);
    expect(text).toMatch(/^oauth_keeper_api_duration_seconds_count\{provider="di",status_class="2xx"\} 1$/m);
    expect(text).toMatch(/^oauth_keeper_login_duration_seconds_bucket\{le="\+Inf",provider="di",outcome="success"\} 1$/m);

    // Every label value is from a fixed set: a provider, an outcome, a status class, an error code, a bucket bound.
    const values = [...text.matchAll(/(\w+)="([^"]*)"/g)].map((m) => m[2]!);
    expect(values.length).toBeGreaterThan(0);
    expect(values.filter((v) => !ALLOWED_LABEL_VALUE.test(v))).toEqual([]);
    // And none of what identifies this visitor or their grant.
    const sid = decodeURIComponent(browser.cookies.get('connect.sid')!).replace(/^s:/, '').split('.')[0]!;
    for (const secret of [...seen, sid, status.user.id, status.user.displayName, 'alice', 'patent']) {
      expect(secret.length).toBeGreaterThan(0);
      expect(text).not.toContain(secret);
    }
  });
});
