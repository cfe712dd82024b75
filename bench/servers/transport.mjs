// A proxy-like path per transport (config.transport): GET /<size> → upstream GET
// /plain/<size> → status, content-type and content-length copied, body piped to the client.
//   node-http        node:http request with a keep-alive http.Agent (maxSockets 64)
//   undici-request   undici 7 Pool (64 connections) .request(), body piped
//   undici-stream    undici 7 Pool .stream(), writing straight into the response
//   undici-pipeline  undici 7 Pool .pipeline(), a Duplex piped to the response
//   fetch            Node's global fetch, body through Readable.fromWeb
import http from 'node:http';
import { pipeline, Readable } from 'node:stream';
import { Pool } from 'undici';
import { config, failed, listen, onClose, ready } from './child.mjs';

const CONNECTIONS = 64;
const origin = config.upstreamUrl;
const up = new URL(origin);
const noop = () => undefined;

function head(res, status, get) {
  const headers = { 'content-type': get('content-type') ?? 'application/octet-stream' };
  const length = get('content-length');
  if (length !== undefined && length !== null) headers['content-length'] = length;
  res.writeHead(status, headers);
}

function fail(res, error) {
  if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
  res.end(String(error?.message ?? error));
}

function makeHandler(transport) {
  if (transport === 'node-http') {
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
    onClose(() => agent.destroy());
    return (req, res) => {
      const out = http.request({ host: up.hostname, port: up.port, path: `/plain${req.url}`, method: 'GET', agent }, (u) => {
        head(res, u.statusCode, (n) => u.headers[n]);
        pipeline(u, res, noop);
      });
      out.on('error', (error) => fail(res, error));
      out.end();
    };
  }
  const pool = new Pool(origin, { connections: CONNECTIONS });
  onClose(() => pool.close());
  const headerOf = (headers) => (n) => headers[n];
  if (transport === 'undici-request') {
    return (req, res) => {
      pool.request({ path: `/plain${req.url}`, method: 'GET' }).then(
        ({ statusCode, headers, body }) => {
          head(res, statusCode, headerOf(headers));
          pipeline(body, res, noop);
        },
        (error) => fail(res, error),
      );
    };
  }
  if (transport === 'undici-stream') {
    return (req, res) => {
      pool.stream(
        { path: `/plain${req.url}`, method: 'GET' },
        ({ statusCode, headers }) => {
          head(res, statusCode, headerOf(headers));
          return res;
        },
        (error) => {
          if (error) fail(res, error);
        },
      );
    };
  }
  if (transport === 'undici-pipeline') {
    return (req, res) => {
      const duplex = pool.pipeline({ path: `/plain${req.url}`, method: 'GET' }, ({ statusCode, headers, body }) => {
        head(res, statusCode, headerOf(headers));
        return body;
      });
      duplex.end(); // a GET: nothing to send
      pipeline(duplex, res, (error) => {
        if (error) fail(res, error);
      });
    };
  }
  if (transport === 'fetch') {
    return (req, res) => {
      fetch(`${origin}/plain${req.url}`).then(
        (r) => {
          head(res, r.status, (n) => r.headers.get(n) ?? undefined);
          pipeline(Readable.fromWeb(r.body), res, noop);
        },
        (error) => fail(res, error),
      );
    };
  }
  throw new Error(`unknown transport ${transport}`);
}

try {
  const server = http.createServer(makeHandler(config.transport));
  server.keepAliveTimeout = 60_000;
  const port = await listen(server);
  ready({ url: `http://127.0.0.1:${port}`, kind: config.transport });
} catch (error) {
  failed(error);
}
