// Every test file fails if anything it ran left a promise rejection unhandled:
// the library must report every failure through a response, an error or an event.
const unhandled: unknown[] = [];
const onRejection = (reason: unknown) => unhandled.push(reason);
process.on('unhandledRejection', onRejection);

afterAll(() => {
  process.off('unhandledRejection', onRejection);
  expect(unhandled.map((r) => (r instanceof Error ? `${r.name}: ${r.message}` : String(r)))).toEqual([]);
});
