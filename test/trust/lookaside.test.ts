import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { lookasideRepositoryPath, lookasideSignatureUrl, readLookasideSignatures, writeLookasideSignature } from '../../src/trust/lookaside.js';
import { createSimpleSignature, verifySimpleSignature } from '../../src/trust/pgp.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { digestOf } from '../../src/oci/digest.js';
import { makeImageLayout } from '../harness/layouts.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { requireTool, run, tempDir } from '../harness/tools.js';
import { makeGpgHome, type GpgHome } from './gpg-home.js';
import { refused } from '../harness/assertions.js';

/**
 * Lookaside signature storage: the path layout containers/image uses, checked against
 * skopeo itself writing and reading it (through a real registry), file:// and http://.
 */

const execFileAsync = promisify(execFile);
/** skopeo while this process serves HTTP: an async child, so the event loop keeps answering. */
async function skopeo(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  try {
    return (await execFileAsync('skopeo', args, { env, maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; code?: number };
    throw new Error(`skopeo ${args.join(' ')} failed (exit ${err.code}): ${err.stderr ?? ''}`);
  }
}

const REPO = 'basalt/os';
let dir: string;
let digest: string;

before(async () => {
  dir = await tempDir('lookaside');
  digest = digestOf(`manifest ${dir}`);
});

/** A loopback static server over `root`, with per-path status overrides, logging request paths. */
async function serveDirectory(root: string, overrides: Map<string, number> = new Map()): Promise<{ url: string; paths: string[]; server: Server }> {
  const paths: string[] = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    paths.push(path);
    const status = overrides.get(path);
    if (status !== undefined) {
      res.writeHead(status).end(`status ${status}`);
      return;
    }
    readFile(join(root, path)).then(
      (data) => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(data),
      () => res.writeHead(404).end('not found'),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, paths, server };
}

test('file:// write then read: numbered signature-N files in the containers/image layout', async () => {
  const root = join(dir, 'roundtrip');
  const base = pathToFileURL(root).href;
  const sigs = [Buffer.from('first signature'), Buffer.from('second'), Buffer.from([0, 1, 2, 255])];
  const written: string[] = [];
  for (const sig of sigs) written.push(await writeLookasideSignature(base, REPO, digest, sig));
  const hex = digest.slice('sha256:'.length);
  assert.deepEqual(written, [1, 2, 3].map((n) => join(root, `${REPO}@sha256=${hex}`, `signature-${n}`)));
  assert.deepEqual((await readdir(join(root, 'basalt'))).sort(), [`os@sha256=${hex}`]);
  assert.deepEqual(await readdir(join(root, `${REPO}@sha256=${hex}`)), ['signature-1', 'signature-2', 'signature-3']);
  for (const [i, sig] of sigs.entries()) assert.deepEqual(await readFile(written[i]!), sig);
  assert.deepEqual(await readLookasideSignatures(base, REPO, digest), sigs);
  // Another image, or no storage at all, has no signatures (not an error).
  assert.deepEqual(await readLookasideSignatures(base, REPO, digestOf('another manifest')), []);
  assert.deepEqual(await readLookasideSignatures(pathToFileURL(join(dir, 'nothing-here')).href, REPO, digest), []);
  // Reading stops at the first gap, as containers/image does.
  await writeFile(join(root, `${REPO}@sha256=${hex}`, 'signature-5'), 'after a gap');
  assert.equal((await readLookasideSignatures(base, REPO, digest)).length, 3);
});

test('concurrent writers each get their own number and nothing is overwritten', async () => {
  const base = pathToFileURL(join(dir, 'concurrent')).href;
  const sigs = Array.from({ length: 12 }, (_, i) => Buffer.from(`signature number ${i}`));
  const paths = await Promise.all(sigs.map((s) => writeLookasideSignature(base, REPO, digest, s)));
  assert.equal(new Set(paths).size, sigs.length);
  const read = await readLookasideSignatures(base, REPO, digest);
  assert.equal(read.length, sigs.length);
  assert.deepEqual(read.map(String).sort(), sigs.map(String).sort());
  const left = await readdir(join(dir, 'concurrent', `${REPO}@${digest.replace(':', '=')}`));
  assert.ok(left.every((f) => /^signature-\d+$/.test(f)), `temp files left behind: ${left.join(' ')}`);
});

test('URLs follow docs/signature-protocols.md: base + / + repository path + @algo=hex + /signature-N', () => {
  const d = digestOf('m');
  const hex = d.slice(7);
  assert.equal(lookasideSignatureUrl('https://example.com/sigstore', 'library/busybox', d, 1).href, `https://example.com/sigstore/library/busybox@sha256=${hex}/signature-1`);
  assert.equal(lookasideSignatureUrl('https://example.com/sigstore', 'ns1/ns2/ns3/repo', d, 2).href, `https://example.com/sigstore/ns1/ns2/ns3/repo@sha256=${hex}/signature-2`);
  // Go's url.Parse gives a host-only URL an empty path, so there is a single slash.
  assert.equal(lookasideSignatureUrl('http://127.0.0.1:8080', 'a/b', d, 1).href, `http://127.0.0.1:8080/a/b@sha256=${hex}/signature-1`);
  assert.equal(lookasideSignatureUrl('file:///var/lib/containers/sigstore', 'a', d, 3).href, `file:///var/lib/containers/sigstore/a@sha256=${hex}/signature-3`);
});

test('repository paths are what containers/image puts in lookaside URLs: no host, tag or digest; docker.io adds library/', () => {
  assert.equal(lookasideRepositoryPath('busybox'), 'library/busybox');
  assert.equal(lookasideRepositoryPath('docker.io/busybox:latest'), 'library/busybox');
  assert.equal(lookasideRepositoryPath('quay.io/fedora/fedora-bootc:41'), 'fedora/fedora-bootc');
  assert.equal(lookasideRepositoryPath(`localhost:5000/ns1/ns2/repo@${digestOf('x')}`), 'ns1/ns2/repo');
  assert.throws(() => lookasideRepositoryPath('Not A Reference'), (e: unknown) => isBasaltError(e, 'usage'));
});

test('bad inputs are refused before anything is touched', async () => {
  const base = pathToFileURL(join(dir, 'bad')).href;
  await refused(writeLookasideSignature(base, '../escape', digest, Buffer.from('x')), 'invalid', /"\.\.\/escape" is not a repository path/);
  await refused(writeLookasideSignature(base, 'a//b', digest, Buffer.from('x')), 'invalid', /not a repository path/);
  await refused(readLookasideSignatures(base, 'Upper/Case', digest), 'invalid', /not a repository path/);
  await refused(writeLookasideSignature(base, REPO, 'sha256:../../x', Buffer.from('x')), 'invalid', /manifest digest/);
  await refused(readLookasideSignatures(base, REPO, 'latest'), 'invalid', /manifest digest "latest"/);
  await refused(writeLookasideSignature('not a url', REPO, digest, Buffer.from('x')), 'invalid', /not a URL/);
  await refused(readLookasideSignatures('ftp://example.test/sigs', REPO, digest), 'unsupported', /only file, http and https/);
  await refused(writeLookasideSignature('https://example.test/sigs', REPO, digest, Buffer.from('x')), 'unsupported', /read-only/);
  await refused(writeLookasideSignature(base, REPO, digest, Buffer.alloc(0)), 'invalid', /empty signature/);
  await assert.rejects(readdir(join(dir, 'bad')), /ENOENT/);
});

test('http(s) lookaside: reads signature-1.. until a 404, from the same layout a file:// write makes', async () => {
  const root = join(dir, 'webroot');
  const sigs = [Buffer.from('one'), Buffer.from('two')];
  for (const s of sigs) await writeLookasideSignature(pathToFileURL(join(root, 'lookaside')).href, REPO, digest, s);
  const web = await serveDirectory(root);
  try {
    assert.deepEqual(await readLookasideSignatures(`${web.url}/lookaside`, REPO, digest), sigs);
    const prefix = `/lookaside/${REPO}@${digest.replace(':', '=')}`;
    assert.deepEqual(web.paths, [`${prefix}/signature-1`, `${prefix}/signature-2`, `${prefix}/signature-3`]);
    assert.deepEqual(await readLookasideSignatures(`${web.url}/elsewhere`, REPO, digest), []);
  } finally {
    web.server.close();
  }
});

test('http errors other than 404 are errors naming the URL and status, not an empty list', async () => {
  const root = join(dir, 'webroot-errors');
  await writeLookasideSignature(pathToFileURL(root).href, REPO, digest, Buffer.from('one'));
  const second = `/${REPO}@${digest.replace(':', '=')}/signature-2`;
  for (const [status, kind] of [[500, 'network'], [403, 'denied'], [401, 'auth']] as const) {
    const web = await serveDirectory(root, new Map([[second, status]]));
    try {
      await refused(readLookasideSignatures(web.url, REPO, digest), kind, new RegExp(`${web.url.replace(/[.]/g, '\\.')}/basalt/os@sha256=[0-9a-f]{64}/signature-2: HTTP ${status}`));
    } finally {
      web.server.close();
    }
  }
  // Nobody listening is a network error too.
  const web = await serveDirectory(root);
  web.server.close();
  await new Promise((r) => web.server.once('close', r));
  await refused(readLookasideSignatures(web.url, REPO, digest), 'network', /fetching lookaside signature/);
});

// ---------------------------------------------------------------------------------------
// Against skopeo (containers/image) through a real registry.

let registry: TestRegistry | undefined;
let home: GpgHome | undefined;

after(async () => {
  home?.close();
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('skopeo copy --sign-by writes where we read, and skopeo reads (file:// and http://) what we write', async () => {
  requireTool('skopeo');
  requireTool('docker-registry');
  registry = await startRegistry({ flavour: 'open' });
  home = await makeGpgHome(dir);
  const fpr = home.generateKey('Lookaside Signer <lookaside@example.test>');
  const keyring = join(dir, 'lookaside-signer.gpg');
  await writeFile(keyring, home.exportKeys([fpr]));
  await makeImageLayout(join(dir, 'layout'), 'v1', [{ 'etc/hostname': 'basalt\n' }]);
  const ref = `${registry.host}/${REPO}:v1`;
  assert.equal(lookasideRepositoryPath(ref), REPO);

  const registriesD = async (name: string, lookaside: string): Promise<string> => {
    const d = join(dir, name);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'basalt.yaml'), `docker:\n  ${registry!.host}:\n    lookaside: ${lookaside}\n`);
    return d;
  };

  // skopeo signs while pushing and stores the signature in its lookaside staging dir.
  const skopeoStore = join(dir, 'skopeo-store');
  const dSkopeo = await registriesD('registries.d-skopeo', pathToFileURL(skopeoStore).href);
  await skopeo(['--registries.d', dSkopeo, 'copy', '--dest-tls-verify=false', '--sign-by', fpr, `oci:${join(dir, 'layout')}:v1`, `docker://${ref}`], home.env);
  const manifest = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], home.env);
  const manifestDigest = digestOf(manifest);
  const found = await readLookasideSignatures(pathToFileURL(skopeoStore).href, REPO, manifestDigest);
  assert.equal(found.length, 1, 'one signature where skopeo put it');
  const payload = JSON.parse((await verifySimpleSignature(found[0]!, [keyring])).payload.toString()) as { critical: { identity: Record<string, string>; image: Record<string, string> } };
  assert.equal(payload.critical.identity['docker-reference'], ref);
  assert.equal(payload.critical.image['docker-manifest-digest'], manifestDigest);

  // We sign and store; skopeo, under a signedBy policy, finds and accepts it.
  const ourStore = join(dir, 'our-store');
  const ourPayload = Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': ref }, image: { 'docker-manifest-digest': manifestDigest }, type: 'atomic container signature' }, optional: { creator: 'basalt test' } }));
  const ourSignature = await createSimpleSignature(ourPayload, { keyId: fpr, gnupgHome: home.dir });
  const written = await writeLookasideSignature(pathToFileURL(ourStore).href, REPO, manifestDigest, ourSignature);
  assert.equal(written, join(ourStore, `${REPO}@${manifestDigest.replace(':', '=')}`, 'signature-1'));
  const policy = join(dir, 'policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'reject' }], transports: { docker: { [registry.host]: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: keyring }] } } }));
  const pull = async (registriesDir: string, to: string): Promise<string> =>
    skopeo(['--policy', policy, '--registries.d', registriesDir, 'copy', '--src-tls-verify=false', `docker://${ref}`, `dir:${join(dir, to)}`], home!.env);
  await pull(await registriesD('registries.d-ours', pathToFileURL(ourStore).href), 'pulled-file');
  // skopeo carried the signature it read from our store into its dir: copy.
  assert.deepEqual(await readFile(join(dir, 'pulled-file', 'signature-1')), ourSignature);
  // The same directory served over http: skopeo reads our layout from a web server too.
  const web = await serveDirectory(ourStore);
  try {
    await pull(await registriesD('registries.d-http', web.url), 'pulled-http');
    assert.ok(web.paths.includes(`/${REPO}@${manifestDigest.replace(':', '=')}/signature-1`), web.paths.join(' '));
    // And skopeo really checks: an empty lookaside is refused under the same policy.
    await assert.rejects(pull(await registriesD('registries.d-empty', `${web.url}/empty`), 'pulled-none'), /Source image rejected: A signature was required, but no signature exists/);
  } finally {
    web.server.close();
  }
});
