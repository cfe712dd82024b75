import express, { type NextFunction, type Request, type Response } from 'express';
import request from 'supertest';
import { authorized, ErrorCodes, isOAuthKeeperError, type OAuthToken } from '../../../src/index';

const token: OAuthToken = Object.freeze({ provider: 'acme', accessToken: 'at-1', tokenType: 'Bearer', expiresAt: null, scope: 'read', extras: {} });

const oauthFetch: NonNullable<Request['oauthFetch']> = async () => new globalThis.Response('{}');

/** Stands for keeper.middleware() and the guard: sets req.oauthFetch and req.oauthToken. */
function guard(req: Request, _res: Response, next: NextFunction): void {
  req.oauthFetch = oauthFetch;
  req.oauthToken = token;
  next();
}

function appWith(...handlers: express.RequestHandler[]): express.Express {
  const app = express();
  app.get('/r', ...handlers);
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    res.status(500).json({ code: isOAuthKeeperError(error) ? error.code : String((error as Error).message) });
  });
  return app;
}

describe('authorized(handler)', () => {
  it('runs the handler behind the guard with req.oauthToken, answering what it answers', async () => {
    const app = appWith(
      guard,
      authorized(async (req, res) => {
        const upstream = await req.oauthFetch('acme', '/user');
        res.json({ provider: req.oauthToken.provider, scope: req.oauthToken.scope, upstream: await upstream.json(), same: req.oauthFetch === oauthFetch });
      }),
    );
    const res = await request(app).get('/r');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ provider: 'acme', scope: 'read', upstream: {}, same: true });
  });

  it('refuses to run where no guard ran: next() gets MIDDLEWARE_NOT_MOUNTED, naming the guard to mount', async () => {
    const handler = jest.fn();
    const next = jest.fn();
    authorized(handler)({} as Request, {} as Response, next);
    authorized(handler)({ oauthToken: token } as Request, {} as Response, next); // a token set by hand, no keeper.middleware()
    expect(handler).not.toHaveBeenCalled();
    expect(next).toHaveBeenCalledTimes(2);
    for (const [error] of next.mock.calls as unknown[][]) {
      expect(isOAuthKeeperError(error) && error.code).toBe(ErrorCodes.MIDDLEWARE_NOT_MOUNTED);
      expect((error as Error).message).toContain('ensureAuthorized(provider)');
    }
    expect((await request(appWith(authorized(handler))).get('/r')).body).toEqual({ code: ErrorCodes.MIDDLEWARE_NOT_MOUNTED });
  });

  it('sends a throw and a rejection to next(error), as Express 5 does and Express 4 does not', async () => {
    const thrown = appWith(guard, authorized(() => {
      throw new Error('sync failure');
    }));
    expect((await request(thrown).get('/r')).body).toEqual({ code: 'sync failure' });
    const rejected = appWith(guard, authorized(async () => {
      await Promise.resolve();
      throw new Error('async failure');
    }));
    expect((await request(rejected).get('/r')).body).toEqual({ code: 'async failure' });
    const next = jest.fn();
    authorized(() => Promise.reject(undefined))({ oauthToken: token, oauthFetch } as Request, {} as Response, next);
    await new Promise((resolve) => setImmediate(resolve));
    expect(next).toHaveBeenCalledWith(expect.objectContaining({ message: 'The authorized handler rejected without a reason.' }));
  });

  it('takes a function only, and says so when mounted with something else', () => {
    expect(() => authorized('acme' as never)).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIGURATION_INVALID, message: expect.stringContaining('needs a function') }));
  });
});
