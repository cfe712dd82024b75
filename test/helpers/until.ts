/**
 * Waits until `check` holds, yielding to the event loop between tries. A readiness wait on
 * observable state, not a sleep; it gives up (throws) after `limitMs` so a bug cannot spin forever.
 */
export async function until(check: () => boolean | Promise<boolean>, what: string, limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
