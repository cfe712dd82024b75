// `npm start`: the example app on PORT (default 3000).
import { readConfig } from './config.mjs';
import { createExampleApp } from './app.mjs';

const config = readConfig();
const example = await createExampleApp(config);
const server = example.app.listen(config.port, () => {
  for (const notice of example.notices) console.log(`notice: ${notice}`);
  console.log(`oauth-keeper example app listening on http://localhost:${server.address().port}`);
});

async function shutdown() {
  server.close();
  server.closeAllConnections?.();
  await example.close();
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
