import type { ErrorRequestHandler } from 'express';
import { defineProvider, ErrorCodes, OAuthKeeperStrategy, type OAuthKeeperError } from '../../src/index';
import { createTestApp, login, startLogin, type ExampleOptions, type TestApp } from '../helpers/app';

/** Every log line the keeper wrote, by level. */
function recordingLogger() {
  const lines: Array<{ level: 'warn' | 'error'; message: string; fields: Record<string, unknown> }> = [];
  return {
    lines,
    logger: {
      warn: (message: string, fields: Record<string, unknown> = {}) => lines.push({ level: 'warn', message, fields }),
      error: (message: string, fields: Record<string, unknown> = {}) => lines.push({ level: 'error', message, fields }),
    },
  };
}

const TOKENISH = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXRoYXQtaXMtbG9uZw';

/** The example provider, with a profile hook that breaks the way app code breaks. */
function brokenProfile(sandboxURL: string): OAuthKeeperStrategy<ExampleOptions> {
  const provider = defineProvider<ExampleOptions>({
    name: 'example',
    authorizationURL: (o) => `${o.baseURL}/authorize`,
    tokenURL: (o) => `${o.baseURL}/token`,
    hooks: {
      userProfile: async () => {
        throw new TypeError(`Cannot read properties of undefined (reading 'id') near ${TOKENISH}`);
      },
    },
  });
  return new OAuthKeeperStrategy(provider, { clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/example/callback', baseURL: sandboxURL });
}

const open: TestApp[] = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close();
});

describe('unexpected errors', () => {
  it("reach the app's own Express error handler with their real cause, logged redacted, under a code of their own", async () => {
    const { lines, logger } = recordingLogger();
    const seen: unknown[] = [];
    const appHandler: ErrorRequestHandler = (error, _req, res, _next) => {
      seen.push(error);
      res.status(500).json({ handledBy: 'app' });
    };
    const t = await createTestApp({ strategy: (s) => brokenProfile(s.url), keeper: { logger }, routes: (app) => app.use(appHandler) });
    open.push(t);
    const agent = t.agent();
    const callback = await startLogin(agent);
    const res = await agent.get(callback).set('accept', 'application/json').expect(500);
    expect(res.body).toEqual({ handledBy: 'app' });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeInstanceOf(TypeError);

    const logged = lines.find((l) => l.fields['code'] === ErrorCodes.INTERNAL_ERROR)!;
    expect(logged.level).toBe('error');
    expect(logged.fields['code']).not.toBe(ErrorCodes.PROVIDER_ERROR);
    const cause = logged.fields['cause'] as { name: string; message: string; stack: string };
    expect(cause.name).toBe('TypeError');
    expect(cause.message).toContain("Cannot read properties of undefined (reading 'id')");
    // What a cause quotes is masked: no token-like run reaches the log.
    expect(JSON.stringify(logged)).not.toContain(TOKENISH);
    expect(JSON.stringify(logged)).not.toMatch(/eyJ[\w-]{20,}/);
    expect(cause.stack).toContain('TypeError');
  });

  it('go to onError, when given, as OAUTH_KEEPER_INTERNAL_ERROR with the cause kept', async () => {
    const received: OAuthKeeperError[] = [];
    const t = await createTestApp({
      strategy: (s) => brokenProfile(s.url),
      keeper: {
        onError: (error, _req, res) => {
          received.push(error);
          res.status(error.status).json({ code: error.code });
        },
      },
    });
    open.push(t);
    const agent = t.agent();
    const res = await agent.get(await startLogin(agent)).set('accept', 'application/json').expect(500);
    expect(res.body).toEqual({ code: ErrorCodes.INTERNAL_ERROR });
    expect(received[0]!.cause).toBeInstanceOf(TypeError);
    expect(received[0]!.message).not.toContain(TOKENISH);
  });

  it("a verify callback that throws: the page says so, the log carries the verify's own error", async () => {
    const { lines, logger } = recordingLogger();
    const t = await createTestApp({
      strategy: (s) =>
        new OAuthKeeperStrategy(
          defineProvider<ExampleOptions>({ name: 'example', authorizationURL: (o) => `${o.baseURL}/authorize`, tokenURL: (o) => `${o.baseURL}/token` }),
          { clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/example/callback', baseURL: s.url },
          () => {
            throw new Error('users table is read-only');
          },
        ),
      keeper: { logger },
    });
    open.push(t);
    const agent = t.agent();
    const res = await agent.get(await startLogin(agent)).set('accept', 'text/html').expect(500);
    expect(res.text).toContain(ErrorCodes.VERIFY_FAILED);
    const logged = lines.find((l) => l.fields['code'] === ErrorCodes.VERIFY_FAILED)!;
    expect(logged.level).toBe('error');
    expect(JSON.stringify(logged.fields['cause'])).toContain('users table is read-only');
  });
});

describe('error pages', () => {
  it('are plain and never a dead end: try the login again, or go home', async () => {
    const t = await createTestApp();
    open.push(t);
    const agent = t.agent();
    await login(agent);
    // A callback replayed after the login completed: its state is spent.
    const replay = await t.agent().get('/auth/example/callback?code=x&state=spent').set('accept', 'text/html');
    expect(replay.status).toBe(400);
    expect(replay.type).toBe('text/html');
    expect(replay.text).toContain('<a href="/auth/example">Try again</a>');
    expect(replay.text).toContain('<a href="/">Home</a>');
    expect(replay.text).not.toMatch(/<script/i);
  });
});
