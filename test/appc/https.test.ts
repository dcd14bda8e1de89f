import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { requireTool, run, tempDir } from '../harness/tools.js';
import { actool, basaltAsync, basaltAsyncOk, helloLayout, manifestOf, runAsync } from './helpers.js';

let dir: string;
let server: Server;
let port: number;
let ca: string;
let aci: Buffer;

/** A throwaway CA and a certificate for localhost and 127.0.0.1 signed by it. */
function makeCertificates(d: string): { ca: string; cert: string; key: string } {
  requireTool('openssl');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('openssl', ['req', '-x509', ...ec, '-keyout', join(d, 'ca.key'), '-out', join(d, 'ca.crt'), '-days', '2', '-subj', '/CN=basalt test CA']);
  run('openssl', ['req', ...ec, '-keyout', join(d, 'srv.key'), '-out', join(d, 'srv.csr'), '-subj', '/CN=localhost']);
  run('sh', ['-c', `printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ${join(d, 'ext.cnf')}`]);
  run('openssl', ['x509', '-req', '-in', join(d, 'srv.csr'), '-CA', join(d, 'ca.crt'), '-CAkey', join(d, 'ca.key'), '-CAcreateserial', '-out', join(d, 'srv.crt'), '-days', '2', '-extfile', join(d, 'ext.cnf')]);
  return { ca: join(d, 'ca.crt'), cert: join(d, 'srv.crt'), key: join(d, 'srv.key') };
}

before(async () => {
  dir = await tempDir('aci-https');
  const certs = makeCertificates(dir);
  ca = certs.ca;
  await helloLayout(join(dir, 'layout'), manifestOf('localhost/tls/app'));
  await basaltAsyncOk(['aci', 'build', join(dir, 'layout'), join(dir, 'app.aci')]);
  aci = await readFile(join(dir, 'app.aci'));
  server = createServer({ cert: await readFile(certs.cert), key: await readFile(certs.key) }, (req, res) => {
    const u = new URL(req.url ?? '/', 'https://x');
    if (u.searchParams.get('ac-discovery') === '1' && u.pathname === '/tls')
      return void res.writeHead(200, { 'content-type': 'text/html' }).end(
        `<meta name="ac-discovery" content="localhost/tls https://localhost:${port}/{name}-{version}.{ext}"><meta name="ac-discovery-pubkeys" content="localhost/tls https://localhost:${port}/keys">`,
      );
    if (u.pathname === '/localhost/tls/app-latest.aci') return void res.writeHead(200).end(aci);
    res.writeHead(404).end('no');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  port = (server.address() as AddressInfo).port;
});
after(async () => {
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

test('discovery over https verifies the certificate (a throwaway CA trusted through NODE_EXTRA_CA_CERTS), as actool does', async () => {
  const args = ['aci', 'discover', '--port', String(port), 'localhost/tls/app'];
  const ours = await basaltAsyncOk(args, { NODE_EXTRA_CA_CERTS: ca });
  assert.match(ours, new RegExp(`ACI: https://localhost:${port}/localhost/tls/app-latest.aci`));
  const theirs = await runAsync(await actool(), ['discover', `--port=${port}`, 'localhost/tls/app'], { SSL_CERT_FILE: ca });
  assert.equal(theirs.status, 0, theirs.out);
  assert.ok(theirs.out.includes(ours.split('\n')[0] as string), theirs.out);
  // Without the CA the certificate is refused; --insecure accepts it (and would try http after).
  const refused = await basaltAsync(args);
  assert.equal(refused.status, 3);
  assert.match(refused.stderr, /certificate|CERT|self.signed|issuer/i);
  await basaltAsyncOk([...args.slice(0, 2), '--insecure', ...args.slice(2)]);
});

test('fetch over verified https needs no insecure option for the transport', async () => {
  const store = join(dir, 'store');
  const r = JSON.parse(await basaltAsyncOk(['aci', 'fetch', '--port', String(port), '--insecure-options', 'image', '--store', store, '--trust-dir', join(dir, 't'), '--system-trust-dir', join(dir, 's'), '--json', 'localhost/tls/app'], { NODE_EXTRA_CA_CERTS: ca })) as { aciUrl: string; stored: { name: string } };
  assert.equal(r.aciUrl, `https://localhost:${port}/localhost/tls/app-latest.aci`);
  assert.equal(r.stored.name, 'localhost/tls/app');
  const untrusted = await basaltAsync(['aci', 'fetch', '--port', String(port), '--insecure-options', 'image', '--store', join(dir, 'store2'), 'localhost/tls/app']);
  assert.notEqual(untrusted.status, 0);
  await writeFile(join(dir, 'done'), '');
});
