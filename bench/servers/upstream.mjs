// The provider's API as seen by a proxy: fixed bodies and a long stream, over node:http.
//   /api/1k, /api/1m            1 KiB / 1 MiB, only with an Authorization: Bearer header (else 401)
//   /api/stream?bytes=N         N bytes in 64 KiB chunks, with backpressure (Bearer required)
//   /plain/1k, /plain/1m        the same bodies without the credential check (transport figure)
import http from 'node:http';
import { answer, config, failed, listen, ready } from './child.mjs';

const bodies = { '1k': Buffer.alloc(1024, 'k'), '1m': Buffer.alloc(1024 * 1024, 'm') };
const chunk = Buffer.alloc(64 * 1024, 's');

function stream(res, total) {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
  let left = total;
  const pump = () => {
    while (left > 0) {
      const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= piece.length;
      if (!res.write(piece)) return res.once('drain', pump);
    }
    res.end();
  };
  pump();
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const [, area, what] = url.pathname.split('/');
  if (area === 'api' && !/^Bearer \S+/.test(req.headers.authorization ?? '')) {
    res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' });
    return res.end('{"error":"invalid_token"}');
  }
  if ((area === 'api' || area === 'plain') && bodies[what]) {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(bodies[what].length) });
    return res.end(bodies[what]);
  }
  if (area === 'api' && what === 'stream') return stream(res, Number(url.searchParams.get('bytes') ?? 0));
  res.writeHead(404).end();
});
server.keepAliveTimeout = 60_000;
let connections = 0;
server.on('connection', () => {
  connections += 1;
});
answer('connections', () => connections);

try {
  const port = await listen(server);
  ready({ url: `http://127.0.0.1:${port}`, config });
} catch (error) {
  failed(error);
}
