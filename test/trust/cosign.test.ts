import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile, mkdir, access } from 'node:fs/promises';
import { join } from 'node:path';
import type { CliResult } from '../harness/cli.js';
import { basaltAsync, basaltAsyncOk } from './async-cli.js';
import { makeImageLayout } from '../harness/layouts.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { tempDir } from '../harness/tools.js';
import { pushCosignSignature, readCosignSignatures, SIGNATURE_ANNOTATION } from '../../src/trust/cosign.js';
import { loadPrivateKey } from '../../src/trust/keys.js';
import { openDestination } from '../../src/oci/transports/index.js';
import { digestOf } from '../../src/oci/digest.js';

/**
 * Signing and verifying cosign signatures through the CLI against a real registry, and every
 * attack of the issue: each must be refused with a message that says why, writing nothing.
 */
/** A hung registry exchange fails the test instead of stalling the run. */
const TEST_TIMEOUT_MS = 300_000;
let registry: TestRegistry;
let work: string;
let env: NodeJS.ProcessEnv;
let host: string;
let policyFile: string;
let registriesD: string;
const tls = '--tls-verify=false';

function ok(args: string[]): Promise<string> {
  return basaltAsyncOk(args, { env });
}

function cli(args: string[]): Promise<CliResult> {
  return basaltAsync(args, { env });
}

function refusedWith(r: CliResult, code: number, pattern: RegExp): void {
  assert.equal(r.status, code, `expected exit ${code}, got ${r.status}: ${r.stderr}`);
  assert.match(r.stderr, pattern);
}

async function digestOfImage(name: string): Promise<string> {
  return (await ok(['image', 'digest', tls, name])).trim();
}

function sigTag(digest: string): string {
  return `sha256-${digest.slice('sha256:'.length)}.sig`;
}

/** Copies without any policy (test set-up, the attacker's side). */
async function rawCopy(from: string, to: string): Promise<void> {
  await ok(['image', 'copy', '--insecure-policy', '-q', tls, from, to]);
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

before(async () => {
  registry = await startRegistry({ flavour: 'open' });
  host = registry.host;
  work = await tempDir('trust-cosign');
  env = { BASALT_PASSWORD: 'release pass', BASALT_STORE: join(work, 'store'), HOME: work };
  await ok(['keygen', '--output-key-prefix', join(work, 'trusted')]);
  await ok(['keygen', '--output-key-prefix', join(work, 'other')]);
  // Two different images, made by hand (no basalt code involved in their bytes).
  await makeImageLayout(join(work, 'src-a'), 'img', [{ 'etc/release': 'A\n' }]);
  await makeImageLayout(join(work, 'src-b'), 'img', [{ 'etc/release': 'B\n' }]);
  await rawCopy(`oci:${join(work, 'src-a')}:img`, `docker://${host}/team/app:1`);
  await rawCopy(`oci:${join(work, 'src-b')}:img`, `docker://${host}/team/app:b`);
  registriesD = join(work, 'registries.d');
  await mkdir(registriesD);
  await writeFile(join(registriesD, 'sigstore.yaml'), 'default-docker:\n  use-sigstore-attachments: true\n');
  policyFile = join(work, 'policy.json');
  await writeFile(
    policyFile,
    JSON.stringify({ default: [{ type: 'reject' }], transports: { docker: { [`${host}/team`]: [{ type: 'sigstoreSigned', keyPath: join(work, 'trusted.pub') }] }, oci: { '': [{ type: 'insecureAcceptAnything' }] } } }),
  );
  await ok(['sign', tls, `docker://${host}/team/app:1`, '--key', join(work, 'trusted.key')]);
});

after(async () => {
  await registry?.stop();
});

test('basalt sign → basalt verify --key and --policy accept; the signature is cosign\'s format', { timeout: TEST_TIMEOUT_MS }, async () => {
  const image = `docker://${host}/team/app:1`;
  const out = JSON.parse(await ok(['verify', tls, image, '--key', join(work, 'trusted.pub'), '--format', 'json'])) as { accepted: boolean; manifestDigest: string; requirements: { signatures: { dockerReference: string }[] }[] };
  assert.equal(out.accepted, true);
  assert.equal(out.manifestDigest, await digestOfImage(image));
  assert.equal(out.requirements[0]?.signatures[0]?.dockerReference, `${host}/team/app:1`);
  assert.match(await ok(['verify', tls, image, '--policy', policyFile, '--registries.d', registriesD]), /Accepted/);
  // The stored format: an OCI manifest under sha256-<hex>.sig whose layer is the simple-signing payload.
  const raw = JSON.parse(await ok(['image', 'inspect', '--raw', tls, `docker://${host}/team/app:${sigTag(out.manifestDigest)}`])) as { layers: { mediaType: string; annotations: Record<string, string> }[] };
  assert.equal(raw.layers[0]?.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
  assert.match(raw.layers[0]?.annotations[SIGNATURE_ANNOTATION] ?? '', /^[A-Za-z0-9+/]+=*$/);
  const sigs = await readCosignSignatures(`docker://${host}/team/app:${sigTag(out.manifestDigest)}`, { tlsVerify: false });
  const payload = JSON.parse(sigs[0]?.payload.toString() ?? '{}') as { critical: { type: string; image: Record<string, string> } };
  assert.equal(payload.critical.type, 'cosign container image signature');
  assert.equal(payload.critical.image['docker-manifest-digest'], out.manifestDigest);
});

test('signing again appends: both signatures stay, both verify', { timeout: TEST_TIMEOUT_MS }, async () => {
  await rawCopy(`oci:${join(work, 'src-a')}:img`, `docker://${host}/team/twice:1`);
  const image = `docker://${host}/team/twice:1`;
  await ok(['sign', tls, image, '--key', join(work, 'trusted.key')]);
  await ok(['sign', tls, image, '--key', join(work, 'other.key')]);
  const sigs = await readCosignSignatures(`docker://${host}/team/twice:${sigTag(await digestOfImage(image))}`, { tlsVerify: false });
  assert.equal(sigs.length, 2);
  await ok(['verify', tls, image, '--key', join(work, 'trusted.pub')]);
  await ok(['verify', tls, image, '--key', join(work, 'other.pub')]);
});

test('a wrong key is refused (exit 8) and a copy under the policy writes nothing', { timeout: TEST_TIMEOUT_MS }, async () => {
  const r = await cli(['verify', tls, `docker://${host}/team/app:1`, '--key', join(work, 'other.pub')]);
  refusedWith(r, 8, /not valid for any trusted key/);
  const otherPolicy = join(work, 'policy-other.json');
  await writeFile(otherPolicy, JSON.stringify({ default: [{ type: 'sigstoreSigned', keyPath: join(work, 'other.pub') }] }));
  const dest = join(work, 'out-wrong-key');
  const c = await cli(['image', 'copy', tls, '--policy', otherPolicy, '--registries.d', registriesD, `docker://${host}/team/app:1`, `oci:${dest}:x`]);
  refusedWith(c, 8, /refused by .*policy-other\.json/);
  assert.equal(await exists(join(dest, 'index.json')), false, 'nothing written');
  // The same copy under the trusted policy goes through.
  await ok(['image', 'copy', '-q', tls, '--policy', policyFile, '--registries.d', registriesD, `docker://${host}/team/app:1`, `oci:${join(work, 'out-ok')}:x`]);
  assert.equal(await exists(join(work, 'out-ok', 'index.json')), true);
});

test('no signature under sigstoreSigned, and any image under reject, are refused', { timeout: TEST_TIMEOUT_MS }, async () => {
  const unsigned = `docker://${host}/team/app:b`;
  refusedWith(await cli(['verify', tls, unsigned, '--policy', policyFile, '--registries.d', registriesD]), 8, /no signatures \(looked for docker:\/\/.*\.sig\)/);
  // Outside the trusted scope the default, reject, applies — even to a signed image.
  await rawCopy(`docker://${host}/team/app:1`, `docker://${host}/elsewhere/app:1`);
  refusedWith(await cli(['verify', tls, `docker://${host}/elsewhere/app:1`, '--policy', policyFile, '--registries.d', registriesD]), 8, /rejects every image/);
  // Without use-sigstore-attachments in registries.d, podman would not look: neither does basalt.
  const emptyD = join(work, 'registries.d-empty');
  await mkdir(emptyD, { recursive: true });
  refusedWith(await cli(['verify', tls, `docker://${host}/team/app:1`, '--policy', policyFile, '--registries.d', emptyD]), 8, /does not enable sigstore attachments/);
});

test('tag substitution: another signed image under this tag, or another image\'s signature under this image\'s signature tag, is refused', { timeout: TEST_TIMEOUT_MS }, async () => {
  const a = `docker://${host}/team/subst:1`;
  await rawCopy(`oci:${join(work, 'src-a')}:img`, a);
  // The attacker's image B, validly signed for team/subst:b, is pushed under tag 1.
  await rawCopy(`oci:${join(work, 'src-b')}:img`, `docker://${host}/team/subst:b`);
  await ok(['sign', tls, `docker://${host}/team/subst:b`, '--key', join(work, 'trusted.key')]);
  await rawCopy(`docker://${host}/team/subst:b`, a);
  refusedWith(await cli(['verify', tls, a, '--policy', policyFile, '--registries.d', registriesD]), 8, /is for ".*team\/subst:b", which does not match/);
  // Tag 1 back to image A; B's signature manifest is copied under A's signature tag.
  await rawCopy(`oci:${join(work, 'src-a')}:img`, a);
  const digestA = await digestOfImage(a);
  const digestB = await digestOfImage(`docker://${host}/team/subst:b`);
  await rawCopy(`docker://${host}/team/subst:${sigTag(digestB)}`, `docker://${host}/team/subst:${sigTag(digestA)}`);
  refusedWith(await cli(['verify', tls, a, '--policy', policyFile, '--registries.d', registriesD]), 8, new RegExp(`is for manifest ${digestB}, not this image's ${digestA}`));
});

test('a signature made for another repository is refused', { timeout: TEST_TIMEOUT_MS }, async () => {
  await rawCopy(`oci:${join(work, 'src-a')}:img`, `docker://${host}/team/other:1`);
  await ok(['sign', tls, `docker://${host}/team/other:1`, '--key', join(work, 'trusted.key')]);
  const digest = await digestOfImage(`docker://${host}/team/other:1`);
  await rawCopy(`oci:${join(work, 'src-a')}:img`, `docker://${host}/team/victim:1`);
  await rawCopy(`docker://${host}/team/other:${sigTag(digest)}`, `docker://${host}/team/victim:${sigTag(digest)}`);
  refusedWith(await cli(['verify', tls, `docker://${host}/team/victim:1`, '--policy', policyFile, '--registries.d', registriesD]), 8, /team\/other:1", which does not match/);
  // Even by digest (matchRepoDigestOrExact accepts any tag, but only of the same repository).
  refusedWith(await cli(['verify', tls, `docker://${host}/team/victim@${digest}`, '--policy', policyFile, '--registries.d', registriesD]), 8, /does not match/);
});

test('a tampered manifest is refused: edited under the tag with the old signature copied over, or edited in a layout', { timeout: TEST_TIMEOUT_MS }, async () => {
  const image = `docker://${host}/team/tamper:1`;
  await rawCopy(`oci:${join(work, 'src-a')}:img`, image);
  await ok(['sign', tls, image, '--key', join(work, 'trusted.key')]);
  const original = await digestOfImage(image);
  const manifest = JSON.parse(await ok(['image', 'inspect', '--raw', tls, image])) as Record<string, unknown>;
  manifest.annotations = { 'injected': 'yes' };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const dest = await openDestination(`docker://${host}/team/tamper:1`, { tlsVerify: false });
  await dest.putManifest({ bytes, mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestOf(bytes) }, { top: true });
  await dest.commit();
  await rawCopy(`docker://${host}/team/tamper:${sigTag(original)}`, `docker://${host}/team/tamper:${sigTag(digestOf(bytes))}`);
  refusedWith(await cli(['verify', tls, image, '--policy', policyFile, '--registries.d', registriesD]), 8, /not this image's/);
  // In a layout: the manifest blob edited in place no longer matches the digest index.json names.
  const layout = join(work, 'tamper-layout');
  await rawCopy(`oci:${join(work, 'src-a')}:img`, `oci:${layout}:img`);
  await ok(['sign', `oci:${layout}:img`, '--key', join(work, 'trusted.key'), '--identity', 'example.com/app:1']);
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations: Record<string, string> }[] };
  const top = index.manifests.find((m) => m.annotations['org.opencontainers.image.ref.name'] === 'img');
  const blob = join(layout, 'blobs/sha256', (top?.digest ?? '').slice(7));
  await writeFile(blob, (await readFile(blob, 'utf8')).replace('"schemaVersion":2', '"schemaVersion": 2'));
  refusedWith(await cli(['verify', `oci:${layout}:img`, '--key', join(work, 'trusted.pub'), '--signed-identity', 'example.com/app:1']), 5, /stored bytes have digest/);
});

test('a tampered layer is refused by the copy that consults the policy, and nothing is written', { timeout: TEST_TIMEOUT_MS }, async () => {
  const layout = join(work, 'layer-layout');
  await rawCopy(`oci:${join(work, 'src-a')}:img`, `oci:${layout}:img`);
  await ok(['sign', `oci:${layout}:img`, '--key', join(work, 'trusted.key'), '--identity', `${host}/team/layer:1`]);
  const manifest = JSON.parse(await ok(['image', 'inspect', '--raw', `oci:${layout}:img`])) as { layers: { digest: string }[] };
  const layerFile = join(layout, 'blobs/sha256', (manifest.layers[0]?.digest ?? '').slice(7));
  const layer = await readFile(layerFile);
  layer[layer.length - 5] = (layer[layer.length - 5] as number) ^ 0xff;
  await writeFile(layerFile, layer);
  // The signature still verifies (the manifest is untouched) ...
  await ok(['verify', `oci:${layout}:img`, '--key', join(work, 'trusted.pub'), '--signed-identity', `${host}/team/layer:1`]);
  // ... but the copy checks every blob against the signed manifest before publishing anything.
  const layoutPolicy = join(work, 'policy-layout.json');
  await writeFile(layoutPolicy, JSON.stringify({ default: [{ type: 'reject' }], transports: { oci: { [layout]: [{ type: 'sigstoreSigned', keyPath: join(work, 'trusted.pub'), signedIdentity: { type: 'exactRepository', dockerRepository: `${host}/team/layer` } }] } } }));
  const r = await cli(['image', 'copy', '-q', tls, '--policy', layoutPolicy, `oci:${layout}:img`, `docker://${host}/team/layer:1`]);
  assert.equal(r.status, 5, r.stderr);
  assert.match(r.stderr, /digest|integrity|sha256/);
  assert.equal((await cli(['image', 'digest', tls, `docker://${host}/team/layer:1`])).status, 3, 'no image was published under the tag');
});

test('a corrupt signature blob, and a garbage signature annotation, are refused', { timeout: TEST_TIMEOUT_MS }, async () => {
  const image = `docker://${host}/team/corrupt:1`;
  await rawCopy(`oci:${join(work, 'src-a')}:img`, image);
  const digest = await digestOfImage(image);
  // Garbage in the annotation: pushed by hand with a valid payload and a bogus signature.
  const key = await loadPrivateKey(join(work, 'trusted.key'), async () => 'release pass');
  const sigImage = `docker://${host}/team/corrupt:${sigTag(digest)}`;
  await pushCosignSignature(sigImage, Buffer.from(`{"critical":{"identity":{"docker-reference":"${host}/team/corrupt:1"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`), key, { tlsVerify: false });
  const raw = JSON.parse(await ok(['image', 'inspect', '--raw', tls, sigImage])) as { layers: { annotations: Record<string, string> }[] };
  await ok(['verify', tls, image, '--key', join(work, 'trusted.pub')]);
  // Flip the stored payload blob's bytes in the registry's storage: the digest check fails.
  const layerDigest = (raw.layers[0] as unknown as { digest: string }).digest.slice(7);
  const blobFile = join(registry.storageDir, 'docker/registry/v2/blobs/sha256', layerDigest.slice(0, 2), layerDigest, 'data');
  const blob = await readFile(blobFile);
  await writeFile(blobFile, Buffer.from(blob.toString().replace('critical', 'CRITICAL')));
  const r = await cli(['verify', tls, image, '--key', join(work, 'trusted.pub')]);
  assert.equal(r.status, 5, r.stderr);
  assert.match(r.stderr, new RegExp(layerDigest));
  // A signature annotation that is not a signature.
  const image2 = `docker://${host}/team/corrupt2:1`;
  await rawCopy(`oci:${join(work, 'src-b')}:img`, image2);
  await ok(['sign', tls, image2, '--key', join(work, 'trusted.key')]);
  const sig2 = `docker://${host}/team/corrupt2:${sigTag(await digestOfImage(image2))}`;
  const m2 = JSON.parse(await ok(['image', 'inspect', '--raw', tls, sig2])) as { layers: { annotations: Record<string, string> }[] };
  (m2.layers[0] as { annotations: Record<string, string> }).annotations[SIGNATURE_ANNOTATION] = Buffer.from('not a DER signature').toString('base64');
  const bytes = Buffer.from(JSON.stringify(m2));
  const dest = await openDestination(sig2, { tlsVerify: false });
  await dest.putManifest({ bytes, mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: digestOf(bytes) }, { top: true });
  await dest.commit();
  refusedWith(await cli(['verify', tls, image2, '--key', join(work, 'trusted.pub')]), 8, /not valid for any trusted key/);
});

test('a validly signed payload with an unknown critical field is refused', { timeout: TEST_TIMEOUT_MS }, async () => {
  const image = `docker://${host}/team/critical:1`;
  await rawCopy(`oci:${join(work, 'src-a')}:img`, image);
  const digest = await digestOfImage(image);
  const key = await loadPrivateKey(join(work, 'trusted.key'), async () => 'release pass');
  const payload = `{"critical":{"identity":{"docker-reference":"${host}/team/critical:1"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature","valid-until":"2000-01-01"},"optional":null}`;
  await pushCosignSignature(`docker://${host}/team/critical:${sigTag(digest)}`, Buffer.from(payload), key, { tlsVerify: false });
  refusedWith(await cli(['verify', tls, image, '--key', join(work, 'trusted.pub')]), 8, /unknown field "valid-until" in critical/);
});

test('an unparseable policy is refused naming the file, before anything is written', { timeout: TEST_TIMEOUT_MS }, async () => {
  const bad = join(work, 'bad-policy.json');
  await writeFile(bad, '{"default": [{"type": "reject"}],');
  refusedWith(await cli(['verify', tls, `docker://${host}/team/app:1`, '--policy', bad]), 5, new RegExp(`signature policy ${bad} is not valid JSON`));
  const dest = join(work, 'out-bad-policy');
  refusedWith(await cli(['image', 'copy', tls, '--policy', bad, `docker://${host}/team/app:1`, `oci:${dest}:x`]), 5, /bad-policy\.json/);
  assert.equal(await exists(dest), false);
  await writeFile(bad, JSON.stringify({ default: [{ type: 'signedBy', keyType: 'GPGKeys' }] }));
  refusedWith(await cli(['image', 'copy', tls, '--policy', bad, `docker://${host}/team/app:1`, `oci:${dest}:x`]), 5, /exactly one of keyPath/);
  assert.equal(await exists(dest), false);
});

test('--enforce-container-sigpolicy refuses a policy that accepts unsigned images; a strict one passes', { timeout: TEST_TIMEOUT_MS }, async () => {
  const lax = join(work, 'lax.json');
  await writeFile(lax, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const dest = join(work, 'out-enforce');
  refusedWith(await cli(['image', 'copy', tls, '--policy', lax, '--enforce-container-sigpolicy', `docker://${host}/team/app:1`, `oci:${dest}:x`]), 8, /default policy accepts images without signatures/);
  assert.equal(await exists(dest), false);
  // A strict default that still lets one scope in unsigned is refused for images of that scope.
  const scoped = join(work, 'scoped.json');
  await writeFile(scoped, JSON.stringify({ default: [{ type: 'reject' }], transports: { docker: { [`${host}/team`]: [{ type: 'insecureAcceptAnything' }] } } }));
  refusedWith(await cli(['image', 'copy', tls, '--policy', scoped, '--enforce-container-sigpolicy', `docker://${host}/team/app:1`, `oci:${dest}:x`]), 8, /accepts .* without a signature/);
  await ok(['image', 'copy', '-q', tls, '--policy', policyFile, '--registries.d', registriesD, '--enforce-container-sigpolicy', `docker://${host}/team/app:1`, `oci:${dest}:x`]);
  assert.equal(await exists(join(dest, 'index.json')), true);
});

test('image copy --sign-by-sigstore-private-key signs the destination; layouts and the store hold signatures too', { timeout: TEST_TIMEOUT_MS }, async () => {
  const dest = `docker://${host}/team/copied:1`;
  await ok(['image', 'copy', '-q', tls, '--insecure-policy', '--sign-by-sigstore-private-key', join(work, 'trusted.key'), `oci:${join(work, 'src-b')}:img`, dest]);
  await ok(['verify', tls, dest, '--policy', policyFile, '--registries.d', registriesD]);
  // The store: signatures under the same name scheme, verified by name.
  await ok(['image', 'copy', '-q', '--insecure-policy', '--sign-by-sigstore-private-key', join(work, 'trusted.key'), `oci:${join(work, 'src-b')}:img`, 'localhost/signed/app:1']);
  await ok(['verify', 'localhost/signed/app:1', '--key', join(work, 'trusted.pub')]);
  refusedWith(await cli(['verify', 'localhost/signed/app:1', '--key', join(work, 'other.pub')]), 8, /not valid for any trusted key/);
  const names = JSON.parse(await ok(['image', 'list-tags', 'store:localhost/signed/app'])) as string[];
  assert.ok(names.some((t) => /^localhost\/signed\/app:sha256-[0-9a-f]{64}\.sig$/.test(t)), JSON.stringify(names));
  // A layout has no registry name: verifying needs the identity the signer claimed.
  refusedWith(await cli(['sign', `oci:${join(work, 'src-b')}:img`, '--key', join(work, 'trusted.key')]), 2, /has no registry name/);
  // Copy-and-sign into a layout checks that before copying anything.
  const layoutDest = join(work, 'sign-layout-dest');
  refusedWith(await cli(['image', 'copy', '-q', '--insecure-policy', '--sign-by-sigstore-private-key', join(work, 'trusted.key'), `oci:${join(work, 'src-b')}:img`, `oci:${layoutDest}:x`]), 2, /--sign-identity/);
  assert.equal(await exists(layoutDest), false);
  await ok(['image', 'copy', '-q', '--insecure-policy', '--sign-by-sigstore-private-key', join(work, 'trusted.key'), '--sign-identity', 'example.com/os:7', `oci:${join(work, 'src-b')}:img`, `oci:${layoutDest}:x`]);
  await ok(['verify', `oci:${layoutDest}:x`, '--key', join(work, 'trusted.pub'), '--signed-identity', 'example.com/os:7']);
  refusedWith(await cli(['verify', `oci:${layoutDest}:x`, '--key', join(work, 'trusted.pub'), '--signed-identity', 'example.com/os:8']), 8, /does not match/);
  assert.deepEqual((await readdir(join(work, 'src-b'))).includes('index.json'), true);
});

test('image copy carries cosign signatures along, refuses conversions that would void them, and drops them on request', { timeout: TEST_TIMEOUT_MS }, async () => {
  const signedName = `${host}/team/app:1`;
  await ok(['image', 'copy', '-q', tls, '--policy', policyFile, '--registries.d', registriesD, `docker://${signedName}`, `docker://${host}/prod/app:1`]);
  await ok(['verify', tls, `docker://${host}/prod/app:1`, '--key', join(work, 'trusted.pub'), '--signed-identity', signedName]);
  // Into a layout, the signatures land beside the image.
  const layout = join(work, 'carried');
  await ok(['image', 'copy', '-q', tls, '--policy', policyFile, '--registries.d', registriesD, `docker://${signedName}`, `oci:${layout}:x`]);
  await ok(['verify', `oci:${layout}:x`, '--key', join(work, 'trusted.pub'), '--signed-identity', signedName]);
  // A conversion would change the digest: refused before anything is written.
  const converted = await cli(['image', 'copy', '-q', tls, '--policy', policyFile, '--registries.d', registriesD, '--format', 'v2s2', `docker://${signedName}`, `docker://${host}/prod/app:v2s2`]);
  refusedWith(converted, 2, /void the signatures/);
  assert.equal((await cli(['image', 'digest', tls, `docker://${host}/prod/app:v2s2`])).status, 3);
  // --remove-signatures copies the image alone.
  await ok(['image', 'copy', '-q', tls, '--policy', policyFile, '--registries.d', registriesD, '--remove-signatures', `docker://${signedName}`, `docker://${host}/stripped/app:1`]);
  refusedWith(await cli(['verify', tls, `docker://${host}/stripped/app:1`, '--key', join(work, 'trusted.pub'), '--signed-identity', signedName]), 8, /no signatures/);
});
