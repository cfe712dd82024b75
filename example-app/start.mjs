// `npm start`: the example app on PORT (default 3000).
import { readConfig } from './config.mjs';
import { createExampleApp } from './app.mjs';

const config = readConfig();
const example = await createExampleApp(config);
const server = example.app.listen(config.port);
server.once('listening', () => {
  for (const notice of example.notices) console.log(`notice: ${notice}`);
  console.log(`oauth-keeper example app listening on http://localhost:${server.address().port}`);
});
server.once('error', async (error) => {
  // Say which port and how to pick another, instead of a TypeError about address().
  if (error.code === 'EADDRINUSE' || error.code === 'EACCES') {
    const why = error.code === 'EADDRINUSE' ? 'is already in use (another app, or an example app still running)' : 'may not be used by this user';
    console.error(`Port ${config.port} ${why}. Start on another port: PORT=3001 npm start`);
  } else {
    console.error(`The example app could not listen on port ${config.port}: ${error.message}`);
  }
  await example.close();
  process.exit(1);
});

async function shutdown() {
  server.close();
  server.closeAllConnections?.();
  await example.close();
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
