import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../harness/tools.js';
import { basaltAsync as basalt, basaltAsyncOk as basaltOk, gpgKey, helloLayout, manifestOf, staticServer } from './helpers.js';

let dir: string;
let site: Awaited<ReturnType<typeof staticServer>>;
let keyA: Awaited<ReturnType<typeof gpgKey>>;
let keyB: Awaited<ReturnType<typeof gpgKey>>;
/** What the site serves at /image.aci and /image.aci.asc; tests swap it. */
let served: { aci: Buffer; asc?: Buffer } = { aci: Buffer.alloc(0) };
let files: Record<string, Buffer>;

before(async () => {
  dir = await tempDir('aci-fetch');
  keyA = await gpgKey(dir, 'Alice <alice@example.com>');
  keyB = await gpgKey(dir, 'Bob <bob@example.com>');
  await helloLayout(join(dir, 'app'), manifestOf('localhost/app'));
  await helloLayout(join(dir, 'evil'), manifestOf('localhost/evil'));
  await helloLayout(join(dir, 'app2'), manifestOf('localhost/app', { annotations: [{ name: 'note', value: 'different bytes' }] }));
  for (const n of ['app', 'evil', 'app2']) await basaltOk(['aci', 'build', join(dir, n), join(dir, `${n}.aci`)]);
  await copyFile(join(dir, 'app.aci'), join(dir, 'app-b.aci'));
  await basaltOk(['aci', 'sign', join(dir, 'app.aci'), '--key', keyA.priv]);
  await basaltOk(['aci', 'sign', join(dir, 'evil.aci'), '--key', keyA.priv]);
  await basaltOk(['aci', 'sign', join(dir, 'app-b.aci'), '--key', keyB.priv]);
  files = {};
  for (const n of ['app.aci', 'app.aci.asc', 'evil.aci', 'evil.aci.asc', 'app2.aci', 'app-b.aci.asc']) files[n] = await readFile(join(dir, n));
  site = await staticServer({});
  site.server.removeAllListeners('request');
  site.server.on('request', (req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.searchParams.get('ac-discovery') === '1' && u.pathname === '/app')
      return void res.writeHead(200, { 'content-type': 'text/html' }).end(`<html><head><meta name="ac-discovery" content="localhost/app http://localhost:${site.port}/image.{ext}"></head></html>`);
    if (u.pathname === '/image.aci') return void res.writeHead(200).end(served.aci);
    if (u.pathname === '/image.aci.asc' && served.asc) return void res.writeHead(200).end(served.asc);
    res.writeHead(404).end('not found');
  });
});
after(async () => {
  await site.close();
  await rm(dir, { recursive: true, force: true });
});

interface Env {
  trust: string;
  system: string;
  store: string;
}
let counter = 0;
async function freshEnv(): Promise<Env> {
  const base = join(dir, `env-${counter++}`);
  return { trust: join(base, 'trust'), system: join(base, 'system'), store: join(base, 'store') };
}
function fetchArgs(e: Env, target: string, insecure = 'http'): string[] {
  return ['aci', 'fetch', '--port', String(site.port), '--insecure-options', insecure, '--trust-dir', e.trust, '--system-trust-dir', e.system, '--store', e.store, target];
}
async function storedImages(e: Env): Promise<string[]> {
  return (await readdir(join(e.store, 'images')).catch(() => [] as string[])).filter((n) => n.startsWith('sha512-'));
}

test('trust writes rkt\'s layout: prefix.d/PREFIX/FINGERPRINT and root.d/FINGERPRINT', async () => {
  const e = await freshEnv();
  await basaltOk(['aci', 'trust', '--trust-dir', e.trust, '--prefix', 'localhost/app', keyA.pub]);
  await basaltOk(['aci', 'trust', '--trust-dir', e.trust, '--root', keyB.pub]);
  assert.ok((await stat(join(e.trust, 'prefix.d', 'localhost', 'app', keyA.fingerprint))).size > 0);
  assert.ok((await stat(join(e.trust, 'root.d', keyB.fingerprint))).size > 0);
  assert.equal((await basalt(['aci', 'trust', '--trust-dir', e.trust, keyA.pub])).status, 2);
  assert.equal((await basalt(['aci', 'trust', '--trust-dir', e.trust, '--root', '--prefix', 'x', keyA.pub])).status, 2);
  assert.equal((await basalt(['aci', 'trust', '--trust-dir', e.trust, '--prefix', 'Bad Prefix', keyA.pub])).status, 2);
});

test('fetch by name: discovery, signature by a key trusted for the prefix, stored under its image ID', async () => {
  const e = await freshEnv();
  await basaltOk(['aci', 'trust', '--trust-dir', e.trust, '--prefix', 'localhost/app', keyA.pub]);
  served = { aci: files['app.aci'] as Buffer, asc: files['app.aci.asc'] as Buffer };
  const r = JSON.parse(await basaltOk([...fetchArgs(e, 'localhost/app:1.0.0'), '--json'])) as { stored: { imageId: string; name: string }; signedBy: string; via: string };
  assert.equal(r.via, 'discovery');
  assert.equal(r.signedBy, keyA.fingerprint);
  assert.equal(r.stored.name, 'localhost/app');
  assert.deepEqual(await storedImages(e), [r.stored.imageId]);
  assert.ok((await readFile(join(e.store, 'images', r.stored.imageId, 'image.aci'))).equals(files['app.aci'] as Buffer));
  const listed = JSON.parse(await basaltOk(['aci', 'images', '--store', e.store, '--json'])) as { imageId: string; signedBy: string }[];
  assert.equal(listed[0]?.imageId, r.stored.imageId);
  // Fetching again is idempotent.
  await basaltOk(fetchArgs(e, 'localhost/app'));
  assert.equal((await storedImages(e)).length, 1);
});

test('fetch refuses, storing nothing: untrusted key, key for another prefix, no key, other name, tampered image, no signature', async () => {
  const cases: { label: string; setup: (e: Env) => Promise<void>; serve: typeof served; rule: RegExp }[] = [
    { label: 'no trusted key', setup: async () => undefined, serve: { aci: files['app.aci'] as Buffer, asc: files['app.aci.asc'] as Buffer }, rule: /no trusted key for this image name/ },
    {
      label: 'signed by an untrusted key', setup: async (e) => void (await basaltOk(['aci', 'trust', '--trust-dir', e.trust, '--prefix', 'localhost/app', keyA.pub])),
      serve: { aci: files['app.aci'] as Buffer, asc: files['app-b.aci.asc'] as Buffer }, rule: /not made by a trusted key/,
    },
    {
      label: 'key trusted for another prefix', setup: async (e) => void (await basaltOk(['aci', 'trust', '--trust-dir', e.trust, '--prefix', 'other.org', keyA.pub])),
      serve: { aci: files['app.aci'] as Buffer, asc: files['app.aci.asc'] as Buffer }, rule: /no trusted key for this image name/,
    },
    {
      label: 'image named otherwise than the discovery name', setup: async (e) => void (await basaltOk(['aci', 'trust', '--trust-dir', e.trust, '--root', keyA.pub])),
      serve: { aci: files['evil.aci'] as Buffer, asc: files['evil.aci.asc'] as Buffer }, rule: /named "localhost\/evil", not "localhost\/app"/,
    },
    {
      label: 'tampered image', setup: async (e) => void (await basaltOk(['aci', 'trust', '--trust-dir', e.trust, '--root', keyA.pub])),
      serve: { aci: files['app2.aci'] as Buffer, asc: files['app.aci.asc'] as Buffer }, rule: /not made by a trusted key/,
    },
    {
      label: 'no signature', setup: async (e) => void (await basaltOk(['aci', 'trust', '--trust-dir', e.trust, '--root', keyA.pub])),
      serve: { aci: files['app.aci'] as Buffer }, rule: /no signature/,
    },
  ];
  for (const c of cases) {
    const e = await freshEnv();
    await c.setup(e);
    served = c.serve;
    const r = await basalt(fetchArgs(e, 'localhost/app'));
    assert.equal(r.status, 8, `${c.label}: ${r.stderr}`);
    assert.match(r.stderr, c.rule, c.label);
    assert.deepEqual(await storedImages(e), [], `${c.label}: something was stored`);
  }
  // --insecure-options=image takes an unsigned image (rkt's escape hatch).
  const e = await freshEnv();
  served = { aci: files['app.aci'] as Buffer };
  await basaltOk(fetchArgs(e, 'localhost/app', 'image,http'));
  assert.equal((await storedImages(e)).length, 1);
});

test('system keys count unless an empty local file masks them; plain HTTP needs --insecure-options=http', async () => {
  const e = await freshEnv();
  await mkdir(join(e.system, 'root.d'), { recursive: true });
  await basaltOk(['aci', 'trust', '--trust-dir', e.system, '--root', keyA.pub]);
  served = { aci: files['app.aci'] as Buffer, asc: files['app.aci.asc'] as Buffer };
  const masked = await freshEnv();
  await mkdir(join(masked.trust, 'root.d'), { recursive: true });
  await writeFile(join(masked.trust, 'root.d', keyA.fingerprint), '');
  const r = await basalt(fetchArgs({ ...masked, system: e.system }, 'localhost/app'));
  assert.equal(r.status, 8, r.stderr);
  assert.deepEqual(await storedImages(masked), []);
  await basaltOk(fetchArgs(e, 'localhost/app'));
  assert.equal((await storedImages(e)).length, 1);
  const noHttp = await freshEnv();
  const r2 = await basalt(fetchArgs({ ...noHttp, system: e.system }, 'localhost/app', 'none'));
  assert.notEqual(r2.status, 0);
  assert.deepEqual(await storedImages(noHttp), []);
});

test('fetch by URL and by file checks the signature beside the image', async () => {
  const e = await freshEnv();
  await basaltOk(['aci', 'trust', '--trust-dir', e.trust, '--prefix', 'localhost', keyA.pub]);
  served = { aci: files['app.aci'] as Buffer, asc: files['app.aci.asc'] as Buffer };
  const viaUrl = JSON.parse(await basaltOk([...fetchArgs(e, `http://127.0.0.1:${site.port}/image.aci`), '--json'])) as { via: string };
  assert.equal(viaUrl.via, 'url');
  const e2 = await freshEnv();
  await basaltOk(['aci', 'trust', '--trust-dir', e2.trust, '--prefix', 'localhost/app', keyA.pub]);
  const viaFile = JSON.parse(await basaltOk([...fetchArgs(e2, join(dir, 'app.aci')), '--json'])) as { via: string; signedBy: string };
  assert.equal(viaFile.via, 'file');
  assert.equal(viaFile.signedBy, keyA.fingerprint);
  const bad = await basalt(fetchArgs(e2, join(dir, 'app2.aci')));
  assert.equal(bad.status, 8);
});
