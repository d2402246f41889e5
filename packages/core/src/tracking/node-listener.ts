import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TrackingHandler } from './tracking-handler.js';

/** The most of a request body read (a one-click POST carries `List-Unsubscribe=One-Click`); the rest is refused. */
const MAX_BODY_BYTES = 4 * 1024;

/**
 * Serves a web-standard tracking handler from Node's `http` (or `https`) server:
 * `http.createServer(toNodeListener(createTrackingHandler({ store, keys })))`. The socket's address is passed as the
 * client IP. Never throws into the server: an unexpected failure answers 500.
 */
export function toNodeListener(handler: TrackingHandler): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void serve(handler, req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('Internal error');
    });
  };
}

async function serve(handler: TrackingHandler, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = (req.method ?? 'GET').toUpperCase();
  const body = method === 'POST' ? await readBody(req) : undefined;
  if (body === null) {
    res.writeHead(413, { 'content-type': 'text/plain' }).end('Request body too large');
    return;
  }
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  const host = req.headers.host ?? '127.0.0.1';
  const request = new Request(new URL(req.url ?? '/', `http://${host}`), { method, headers, ...(body ? { body } : {}) });
  const response = await handler(request, { ip: req.socket.remoteAddress });
  const out: Record<string, string> = {};
  response.headers.forEach((value, name) => (out[name] = value));
  res.writeHead(response.status, out);
  if (method === 'HEAD' || !response.body) {
    res.end();
    return;
  }
  res.end(Buffer.from(await response.arrayBuffer()));
}

/** The body, or null when it is over the limit (reading stops there). */
function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
