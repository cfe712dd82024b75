// The background job: runs every few seconds, and for each account calls each connected
// provider's API through keeper.forOwner() — no browser, no session, no request. Refresh
// (single-flight, across instances) and credential placement are the keeper's, as on the web.
import { ErrorCodes } from 'oauth-keeper';

export function startBackgroundJob({ keeper, accounts, apiSamples, intervalMs }) {
  const results = new Map();
  let running = false;

  async function runFor(account) {
    const owner = keeper.forOwner(account);
    const connections = await owner.connections();
    if (connections.length === 0) {
      // Nothing connected any more (disconnected, logged out, or the provider refused the refresh).
      await accounts.remove(account);
      results.delete(account);
      return;
    }
    const calls = {};
    for (const { provider } of connections) {
      const sample = apiSamples[provider];
      const path = sample.path.slice(`/api/${provider}`.length); // under the provider's API base
      try {
        const init = sample.body ? { method: sample.method, headers: { 'content-type': 'application/json' }, body: sample.body } : { method: sample.method };
        const response = await owner.fetch(provider, path, init);
        const text = await response.text();
        calls[provider] = { status: response.status, bytes: text.length };
      } catch (error) {
        // REAUTHORIZATION_REQUIRED: the provider refused the refresh token; the user must connect again.
        calls[provider] = { error: error.code ?? 'unexpected', reconnect: error.code === ErrorCodes.REAUTHORIZATION_REQUIRED };
      }
    }
    results.set(account, { at: new Date().toISOString(), calls });
  }

  async function run() {
    if (running) return; // a slow run is not overlapped by the next tick
    running = true;
    try {
      for (const account of await accounts.list()) await runFor(account).catch((error) => console.warn(`job: ${account}: ${error.code ?? error.message}`));
    } catch (error) {
      console.warn(`job: ${error.code ?? error.message}`);
    } finally {
      running = false;
    }
  }

  const timer = setInterval(run, intervalMs);
  timer.unref();
  return {
    resultsFor: (account) => (account ? (results.get(account) ?? null) : null),
    stop: () => clearInterval(timer),
  };
}
