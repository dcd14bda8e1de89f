import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { Readable } from 'node:stream';
import { createPool, dump, request } from '../../../src/oci/registry/http-client.js';
import { isRetryableNetworkError, networkError } from '../../../src/oci/registry/http.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

async function listen(server: Server | NetServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function readBody(body: AsyncIterable<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c);
  return Buffer.concat(parts).toString();
}

describe('http client on node:http', () => {
  const routes = new Map<string, Handler>();
  let server: Server;
  let other: Server;
  let base: string;
  let otherBase: string;
  const pool = createPool();
  const seen: { path: string; headers: IncomingMessage['headers']; body: Buffer }[] = [];

  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      seen.push({ path: req.url ?? '', headers: req.headers, body });
      const handler = routes.get(new URL(req.url ?? '/', 'http://x').pathname);
      if (handler) handler(req, res, body);
      else res.writeHead(404).end('no');
    });
  };

  before(async () => {
    server = createServer(serve);
    other = createServer(serve);
    base = `http://127.0.0.1:${await listen(server)}`;
    otherBase = `http://localhost:${await listen(other)}`;
  });
  after(async () => {
    pool.http.destroy();
    server.closeAllConnections();
    other.closeAllConnections();
    await new Promise((r) => server.close(r));
    await new Promise((r) => other.close(r));
  });

  it('gives repeated headers as arrays, names in lower case', async () => {
    routes.set('/multi', (_q, res) => {
      res.setHeader('WWW-Authenticate', ['Bearer realm="a"', 'Basic realm="b"']);
      res.setHeader('X-One', 'v');
      res.end('ok');
    });
    const res = await request(new URL('/multi', base), { method: 'GET', pool });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.headers['www-authenticate'], ['Bearer realm="a"', 'Basic realm="b"']);
    assert.equal(res.headers['x-one'], 'v');
    assert.equal(await readBody(res.body), 'ok');
  });

  it('follows redirects for GET, resolving relative Locations, and keeps Authorization only on the same origin', async () => {
    routes.set('/hop1', (_q, res) => res.writeHead(302, { location: '/hop2' }).end());
    routes.set('/hop2', (_q, res) => res.writeHead(307, { location: `${otherBase}/final?x=1` }).end());
    routes.set('/final', (q, res) => res.end(`auth=${q.headers.authorization ?? 'none'} range=${q.headers.range ?? 'none'}`));
    seen.length = 0;
    const res = await request(new URL('/hop1', base), { method: 'GET', pool, headers: { authorization: 'Bearer t', range: 'bytes=5-' }, maxRedirections: 5 });
    assert.equal(res.statusCode, 200);
    assert.equal(await readBody(res.body), 'auth=none range=bytes=5-');
    assert.equal(seen[1]?.headers.authorization, 'Bearer t', 'same-origin hop keeps the credentials');
    // Without maxRedirections, or for other methods, the 3xx itself is the answer.
    const noFollow = await request(new URL('/hop1', base), { method: 'GET', pool });
    assert.equal(noFollow.statusCode, 302);
    await dump(noFollow.body);
    const put = await request(new URL('/hop1', base), { method: 'PUT', pool, body: Buffer.from('x'), maxRedirections: 5 });
    assert.equal(put.statusCode, 302);
    await dump(put.body);
  });

  it('streams a Readable body, chunked or with the given Content-Length', async () => {
    routes.set('/up', (q, res, body) => res.end(`${q.headers['transfer-encoding'] ?? '-'} ${q.headers['content-length'] ?? '-'} ${body.length}`));
    const data = Buffer.alloc(3 * 1024 * 1024, 7);
    const chunks = (): Readable => Readable.from((function* () {
      for (let i = 0; i < data.length; i += 65536) yield data.subarray(i, i + 65536);
    })());
    const chunked = await request(new URL('/up', base), { method: 'PATCH', pool, body: chunks() });
    assert.equal(await readBody(chunked.body), `chunked - ${data.length}`);
    const sized = await request(new URL('/up', base), { method: 'PATCH', pool, headers: { 'content-length': String(data.length) }, body: chunks() });
    assert.equal(await readBody(sized.body), `- ${data.length} ${data.length}`);
  });

  it('fails the request with the error of its body stream', async () => {
    routes.set('/up', (_q, res) => res.end('x'));
    const failing = new Readable({ read() {} });
    failing.push(Buffer.from('abc'));
    const boom = new Error('source broke');
    setTimeout(() => failing.destroy(boom), 20);
    await assert.rejects(request(new URL('/up', base), { method: 'PATCH', pool, body: failing }), (e) => e === boom);
  });

  it('returns an early answer to a streamed upload whole, and stops the source', async () => {
    // The server answers before reading the body and closes, as a proxy refusing a large upload does.
    const early = createServer((_q, res) => res.writeHead(413, { connection: 'close', 'content-length': '8' }).end('too big!'));
    const port = await listen(early);
    let produced = 0;
    const source = new Readable({
      read() {
        produced++;
        setTimeout(() => this.push(Buffer.alloc(64 * 1024)), 5);
      },
    });
    try {
      const res = await request(new URL(`http://127.0.0.1:${port}/up`), { method: 'PATCH', pool, body: source });
      assert.equal(res.statusCode, 413);
      assert.equal(await readBody(res.body), 'too big!');
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(source.destroyed, 'the source is destroyed once the request is over');
      const after = produced;
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(produced, after, 'nothing more is read from the source');
    } finally {
      early.closeAllConnections();
      await new Promise((r) => early.close(r));
    }
  });

  it('reports a body cut short as a retryable error', async () => {
    const raw = createNetServer((c) => c.once('data', () => c.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc')));
    const port = await listen(raw);
    try {
      const res = await request(new URL(`http://127.0.0.1:${port}/`), { method: 'GET', pool });
      const err = await readBody(res.body).then(() => undefined, (e: unknown) => e);
      assert.ok(err !== undefined && isRetryableNetworkError(err), String(err));
      // A connection closed before any answer ("socket hang up") is retryable too.
      const hangup = createNetServer((c) => c.once('data', () => c.destroy()));
      const hport = await listen(hangup);
      const e2 = await request(new URL(`http://127.0.0.1:${hport}/`), { method: 'GET', pool }).then(() => undefined, (e: unknown) => e);
      hangup.close();
      assert.ok(e2 !== undefined && isRetryableNetworkError(e2), String(e2));
    } finally {
      raw.close();
    }
  });

  it('times out a silent server with a retryable error, and honours an AbortSignal', async () => {
    routes.set('/slow', () => undefined);
    const err = await request(new URL('/slow', base), { method: 'GET', pool, timeoutMs: 200 }).then(() => undefined, (e: unknown) => e);
    assert.ok(err !== undefined && isRetryableNetworkError(err), String(err));
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const aborted = await request(new URL('/slow', base), { method: 'GET', pool, signal: ac.signal }).then(() => undefined, (e: unknown) => e);
    assert.equal((aborted as Error).name, 'AbortError');
    assert.equal(isRetryableNetworkError(aborted), false);
  });

  it('says a registry answering plain http on an https URL looks like plain http', async () => {
    const port = Number(new URL(base).port);
    const url = new URL(`https://127.0.0.1:${port}/v2/`);
    const err = await request(url, { method: 'GET', pool }).then(() => undefined, (e: unknown) => e);
    assert.match(networkError(err, url, 'contacting registry').message, /looks like a plain-http registry/);
    const refused = new URL('http://127.0.0.1:1/v2/');
    const e2 = await request(refused, { method: 'GET', pool }).then(() => undefined, (e: unknown) => e);
    assert.match(networkError(e2, refused, 'contacting registry').message, /connection refused/);
    assert.equal(isRetryableNetworkError(e2), false);
  });
});
