import { CookieClient } from './browser';
import { approveAs } from './browser-flow';
import { startExampleApp, type ExampleApp } from './processes';

/** A browser on a running example app: its base URL, cookies, and logins through the sandboxes' pages. */
export interface ExampleVisitor {
  base: string;
  browser: CookieClient;
  /** Logs in (or connects) with a provider as alice; returns the callback URL the provider sent the browser to. */
  connect(provider: string): Promise<URL>;
  /** GET of a JSON route. */
  json<T>(path: string): Promise<T>;
}

/**
 * For a describe block: starts the example app (the built package, on a free port, the cnblogs
 * code flow so that no relay page is involved) and stops it after each test.
 */
export function useExampleApp(): (env?: Record<string, string>) => Promise<ExampleVisitor> {
  let example: ExampleApp | undefined;
  afterEach(() => {
    example?.child.kill('SIGTERM');
    example = undefined;
  });
  return async (env = {}) => {
    example = await startExampleApp({ HOME: process.env['HOME'] ?? '/tmp', CNBLOGS_RESPONSE_TYPE: 'code', ...env });
    const base = `http://127.0.0.1:${example.port}`;
    const browser = new CookieClient();
    return {
      base,
      browser,
      async connect(provider) {
        const start = await browser.fetch(`${base}/auth/${provider}?returnTo=%2F`);
        if (start.status !== 302) throw new Error(`GET /auth/${provider} answered ${start.status}`);
        const approved = await approveAs(start.headers.get('location')!, { username: 'alice', password: 'wonderland' });
        const callback = new URL(approved.location!);
        const done = await browser.fetch(`${base}${callback.pathname}${callback.search}`);
        if (done.status !== 303) throw new Error(`the ${provider} callback answered ${done.status}`);
        return callback;
      },
      json: async <T>(path: string) => (await (await browser.fetch(`${base}${path}`, { headers: { accept: 'application/json' } })).json()) as T,
    };
  };
}
