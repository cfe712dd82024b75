// The OAuth 2.0 sandbox provider (oauth-keeper/sandbox) in a process of its own, so its CPU
// is not the server's. Answers `counters` (token, authorizationCode, refresh, ...).
import { entry } from '../lib/build.mjs';
import { answer, config, failed, onClose, ready } from './child.mjs';

const { startOAuth2Sandbox } = await import(entry(config.keeperDir, 'sandbox'));

try {
  const sandbox = await startOAuth2Sandbox({ autoApprove: true, accessTokenTtlSeconds: 3600, ...config.settings });
  answer('counters', () => ({ ...sandbox.engine.counters }));
  onClose(() => sandbox.close());
  ready({ url: sandbox.url });
} catch (error) {
  failed(error);
}
