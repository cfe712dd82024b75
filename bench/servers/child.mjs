// What every benchmark child shares: its config from argv, "ready" over IPC, answers to the
// parent's questions, and exiting when the parent goes away (no orphan left running).
export const config = JSON.parse(process.argv[2] ?? '{}');

const handlers = new Map();

/** Register an answer to `ask(command)` from the parent. */
export function answer(command, fn) {
  handlers.set(command, fn);
}

process.on('message', async (msg) => {
  if (!msg || msg.ask === undefined) return;
  const fn = handlers.get(msg.command);
  let value;
  try {
    value = fn ? await fn(msg) : { error: `unknown command ${msg.command}` };
  } catch (error) {
    value = { error: error.message };
  }
  process.send?.({ reply: msg.ask, value });
});

let closers = [];
/** Things to close on SIGTERM / parent exit. */
export function onClose(fn) {
  closers.push(fn);
}

async function shutdown() {
  const list = closers;
  closers = [];
  await Promise.race([Promise.allSettled(list.map((fn) => fn())), new Promise((r) => setTimeout(r, 1000))]);
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.on('disconnect', shutdown);

export function ready(info = {}) {
  process.send?.({ ready: true, ...info });
}

export function failed(error) {
  process.send?.({ failed: error?.stack ?? String(error) });
  process.exit(1);
}

let started = 0;
let finished = 0;
answer('requests', () => ({ started, finished }));

/** Listen on a free loopback port (counting the requests it receives); resolves the port. */
export function listen(server) {
  const done = () => {
    finished += 1;
  };
  server.on('request', (_req, res) => {
    started += 1;
    res.once('close', done);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
    onClose(
      () =>
        new Promise((r) => {
          server.closeAllConnections?.();
          server.close(() => r());
        }),
    );
  });
}
