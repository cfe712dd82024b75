/** The Bearer-protected resources: `/connect/userinfo` and the OpenAPI under `/api/`. */
import type { SandboxEngine } from '../engine.js';
import { bearerToken, reply, serve, type SandboxReply, type SandboxRequest } from '../server.js';
import { splitScope, type CnblogsSandboxUser } from './options.js';

const invalidToken = (): SandboxReply => ({ status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' }, body: '' });

const cnblogsUser = (engine: SandboxEngine, id: string): CnblogsSandboxUser | undefined => engine.userById(id) as CnblogsSandboxUser | undefined;

export function userinfo(engine: SandboxEngine, req: SandboxRequest): Promise<SandboxReply> {
  return serve(engine, 'userinfo', () => {
    const grant = engine.verifyAccessToken(bearerToken(req.headers));
    if (!grant) return invalidToken();
    const scopes = splitScope(grant.scope);
    if (grant.userId === '' || !scopes.includes('openid')) {
      return { status: 403, headers: { 'www-authenticate': 'Bearer error="insufficient_scope"' }, body: '' };
    }
    const user = cnblogsUser(engine, grant.userId);
    if (!user || !scopes.includes('profile')) return reply.json(200, { sub: grant.userId });
    return reply.json(200, {
      sub: user.id,
      name: user.name,
      picture: user.avatar,
      website: `https://www.cnblogs.com/${user.blogApp}/`,
      blog_id: String(user.blogId),
      account_id: String(user.spaceUserId),
    });
  });
}

export function api(engine: SandboxEngine, req: SandboxRequest): Promise<SandboxReply> {
  return serve(engine, 'api', () => {
    const token = bearerToken(req.headers);
    if (token === undefined) return { status: 401, headers: { 'www-authenticate': 'Bearer' }, body: '' };
    const grant = engine.verifyAccessToken(token);
    if (!grant || !splitScope(grant.scope).includes('CnBlogsApi')) return invalidToken();
    const path = req.url.pathname;
    // User APIs need a user's token: an app-only (client_credentials) token gets 403.
    const user = grant.userId === '' ? undefined : cnblogsUser(engine, grant.userId);
    if (path === '/api/users' || path === '/api/users/v2') {
      if (!user) return { status: 403, body: '' };
      if (path === '/api/users') {
        return reply.json(200, {
          UserId: user.id,
          SpaceUserID: user.spaceUserId,
          BlogId: user.blogId,
          DisplayName: user.name,
          Face: user.avatar.replace('/avatar/', '/face/'),
          Avatar: user.avatar,
          Seniority: '3年',
          BlogApp: user.blogApp,
          FollowingCount: 4,
          FollowerCount: 2,
          IsVip: false,
          Joined: '2021-03-01T10:00:00',
        });
      }
      return reply.json(200, {
        userId: user.id,
        spaceUserId: user.spaceUserId,
        blogId: user.blogId,
        displayName: user.name,
        face: user.avatar.replace('/avatar/', '/face/'),
        avatar: user.avatar,
        seniority: '3年',
        blogApp: user.blogApp,
        followingCount: 4,
        followerCount: 2,
        isVip: false,
        joined: '2021-03-01T10:00:00',
      });
    }
    const posts = /^\/api\/blogs\/([^/]+)\/posts$/.exec(path);
    if (posts) {
      const blogApp = decodeURIComponent(posts[1]!);
      const owner = (engine.users as CnblogsSandboxUser[]).find((u) => u.blogApp === blogApp);
      if (!owner) return reply.json(404, { Message: 'Blog not found' });
      const pageIndex = Math.max(1, Number(req.url.searchParams.get('pageIndex') ?? '1') || 1);
      return reply.json(
        200,
        pageIndex > 1
          ? []
          : [
              {
                Id: 18000001,
                Title: 'Hello from the sandbox',
                Url: `https://www.cnblogs.com/${owner.blogApp}/p/18000001`,
                Description: 'A sandbox post.',
                Author: owner.name,
                BlogApp: owner.blogApp,
                Avatar: owner.avatar,
                PostDate: '2024-01-01T10:00:00',
                ViewCount: 10,
                CommentCount: 1,
                DiggCount: 2,
              },
            ],
      );
    }
    return reply.json(404, { Message: 'No HTTP resource was found that matches the request URI.' });
  });
}
