import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSimpleSignature, verifySimpleSignature } from '../../src/trust/pgp.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { digestOf } from '../../src/oci/digest.js';
import { makeImageLayout } from '../harness/layouts.js';
import { requireTool, run, tempDir } from '../harness/tools.js';
import { makeGpgHome, type GpgHome } from './gpg-home.js';
import { refused } from '../harness/assertions.js';

/**
 * Simple signing against the tools that define it: skopeo standalone-sign /
 * standalone-verify (containers/image + gpgme), in both directions, with keys made by gpg
 * in a throwaway home. Verification itself never runs gpg.
 */

const IMAGE_REF = 'registry.example.test/basalt/os:v1';

let dir: string;
let home: GpgHome;
let signer: string; // fingerprint of the main signing key
let other: string; // a second key that signs nothing we trust
let protectedKey: string;
let manifestPath: string;
let manifestDigest: string;
let signerKeyring: string;
let otherKeyring: string;

before(async () => {
  requireTool('skopeo');
  dir = await tempDir('pgp');
  home = await makeGpgHome(dir);
  signer = home.generateKey('Basalt Signer <signer@example.test>');
  other = home.generateKey('Someone Else <other@example.test>');
  protectedKey = home.generateKey('Locked Signer <locked@example.test>', { passphrase: 'correct horse' });
  signerKeyring = join(dir, 'signer.gpg');
  otherKeyring = join(dir, 'other.gpg');
  await writeFile(signerKeyring, home.exportKeys([signer]));
  await writeFile(otherKeyring, home.exportKeys([other]));
  // A real image manifest, as skopeo reads it from an OCI layout.
  await makeImageLayout(join(dir, 'layout'), 'v1', [{ 'etc/os-release': 'ID=basalt\n' }]);
  const manifest = run('skopeo', ['inspect', '--raw', `oci:${join(dir, 'layout')}:v1`]);
  manifestPath = join(dir, 'manifest.json');
  await writeFile(manifestPath, manifest);
  manifestDigest = digestOf(manifest);
});

after(async () => {
  home?.close();
  await rm(dir, { recursive: true, force: true });
});

function payloadFor(ref: string, digest: string): Buffer {
  return Buffer.from(JSON.stringify({
    critical: { identity: { 'docker-reference': ref }, image: { 'docker-manifest-digest': digest }, type: 'atomic container signature' },
    optional: { creator: 'basalt test', timestamp: 1_700_000_000 },
  }));
}

async function skopeoSign(key: string): Promise<Buffer> {
  const out = join(dir, `skopeo-${key}.sig`);
  run('skopeo', ['standalone-sign', '-o', out, manifestPath, IMAGE_REF, key], { env: home.env });
  return readFile(out);
}

test('a signature made by skopeo standalone-sign verifies, returning its payload and the signer', async () => {
  const sig = await skopeoSign(signer);
  const verified = await verifySimpleSignature(sig, [signerKeyring]);
  assert.equal(verified.signerFingerprint, signer);
  const payload = JSON.parse(verified.payload.toString()) as { critical: { identity: Record<string, string>; image: Record<string, string>; type: string } };
  assert.equal(payload.critical.type, 'atomic container signature');
  assert.equal(payload.critical.identity['docker-reference'], IMAGE_REF);
  assert.equal(payload.critical.image['docker-manifest-digest'], manifestDigest);
});

test('keys given inline (policy.json keyData), armored or binary, verify like a keyring file', async () => {
  const sig = await skopeoSign(signer);
  for (const armor of [true, false]) {
    const verified = await verifySimpleSignature(sig, [], [home.exportKeys([other], armor), home.exportKeys([signer], armor)]);
    assert.equal(verified.signerFingerprint, signer);
  }
  // An armored keyring file holding several keys, as gpg --export --armor A B writes it.
  const both = join(dir, 'both.asc');
  await writeFile(both, home.exportKeys([other, signer], true));
  assert.equal((await verifySimpleSignature(sig, [both])).signerFingerprint, signer);
});

test('createSimpleSignature output is accepted by skopeo standalone-verify, and by our verifier', async () => {
  const sig = await createSimpleSignature(payloadFor(IMAGE_REF, manifestDigest), { keyId: signer, gnupgHome: home.dir });
  const sigPath = join(dir, 'basalt.sig');
  await writeFile(sigPath, sig);
  const out = run('skopeo', ['standalone-verify', manifestPath, IMAGE_REF, signer, sigPath], { env: home.env });
  assert.match(out, new RegExp(`Signature verified, digest ${manifestDigest}`));
  // skopeo is really checking: another image name is refused.
  assert.throws(() => run('skopeo', ['standalone-verify', manifestPath, 'registry.example.test/other:v1', signer, sigPath], { env: home.env }), /not match|identity/i);
  const verified = await verifySimpleSignature(sig, [signerKeyring]);
  assert.deepEqual(verified.payload, payloadFor(IMAGE_REF, manifestDigest));
  assert.equal(verified.signerFingerprint, signer);
});

test('a passphrase-protected key signs with its passphrase; a wrong or missing one is an auth error', async () => {
  const payload = payloadFor(IMAGE_REF, manifestDigest);
  // Failures first: once unlocked, gpg-agent caches the key and signs without asking.
  await refused(createSimpleSignature(payload, { keyId: protectedKey, gnupgHome: home.dir, passphrase: 'wrong' }), 'auth', /could not unlock.*Bad passphrase/i);
  await refused(createSimpleSignature(payload, { keyId: protectedKey, gnupgHome: home.dir }), 'auth', /could not unlock.*No pinentry/);
  const sig = await createSimpleSignature(payload, { keyId: protectedKey, gnupgHome: home.dir, passphrase: 'correct horse' });
  const sigPath = join(dir, 'locked.sig');
  await writeFile(sigPath, sig);
  run('skopeo', ['standalone-verify', manifestPath, IMAGE_REF, protectedKey, sigPath], { env: home.env });
});

test('signing with a key gpg does not have names the key', async () => {
  await refused(createSimpleSignature(Buffer.from('{}'), { keyId: 'nobody@example.test', gnupgHome: home.dir }), 'not-found', /no secret key "nobody@example\.test"/);
});

test('a signature by a key that is not in the keyring is refused, naming the key', async () => {
  const sig = await skopeoSign(signer);
  await refused(verifySimpleSignature(sig, [otherKeyring]), 'policy', new RegExp(`made by key ${signer.slice(-16)}, which is not in the given keyring`));
});

test('an empty or missing keyring is refused before looking at the signature', async () => {
  const sig = await skopeoSign(signer);
  const empty = join(dir, 'empty.gpg');
  await writeFile(empty, '');
  await refused(verifySimpleSignature(sig, [empty]), 'invalid', /keyring .*empty\.gpg is empty/);
  await refused(verifySimpleSignature(sig, []), 'policy', /no OpenPGP public keys/);
  await refused(verifySimpleSignature(sig, [], [Buffer.alloc(0)]), 'invalid', /keyData #1 is empty/);
  await refused(verifySimpleSignature(sig, [join(dir, 'nope.gpg')]), 'not-found', /nope\.gpg/);
  await refused(verifySimpleSignature(sig, [manifestPath]), 'invalid', /holds no readable OpenPGP public keys/);
  // gpg's own pubring.kbx is a keybox, not a keyring: say what to do instead.
  await refused(verifySimpleSignature(sig, [join(home.dir, 'pubring.kbx')]), 'invalid', /keybox/);
});

test('corrupted signature bytes are refused; no single-byte change yields another payload', async () => {
  const sig = await skopeoSign(signer);
  const good = await verifySimpleSignature(sig, [signerKeyring]);
  // Flip every byte in turn. A binary signature does not cover the literal packet's
  // name/date/format fields, so a few flips may still verify: the payload must then be the
  // same. Everything else is refused as a policy error.
  let refusedCount = 0;
  for (let at = 0; at < sig.length; at++) {
    const bad = Buffer.from(sig);
    bad[at] = bad[at]! ^ 0x55;
    try {
      const r = await verifySimpleSignature(bad, [signerKeyring]);
      assert.ok(r.payload.equals(good.payload), `flipping byte ${at} changed the payload and still verified`);
      assert.equal(r.signerFingerprint, signer);
    } catch (e) {
      assert.ok(isBasaltError(e, 'policy'), `byte ${at}: ${String(e)}`);
      assert.match(e.message, /corrupt or not an OpenPGP message|does not verify|not in the given keyring|not signed|signatures/);
      refusedCount++;
    }
  }
  assert.ok(refusedCount >= sig.length * 0.9, `only ${refusedCount} of ${sig.length} corruptions were refused`);
  await refused(verifySimpleSignature(sig.subarray(0, sig.length - 20), [signerKeyring]), 'policy', /corrupt or not an OpenPGP message|does not verify/);
  await refused(verifySimpleSignature(Buffer.alloc(0), [signerKeyring]), 'policy', /empty/);
});

test('a payload altered inside a valid signature is refused', async () => {
  // Uncompressed, so the payload's bytes sit in the message as they are.
  const payload = payloadFor(IMAGE_REF, manifestDigest);
  home.gpg(['--compress-algo', 'none', '--local-user', signer, '--sign', '--output', join(dir, 'plain.sig')], payload);
  const sig = await readFile(join(dir, 'plain.sig'));
  assert.ok((await verifySimpleSignature(sig, [signerKeyring])).payload.equals(payload));
  const at = sig.indexOf(Buffer.from(manifestDigest));
  assert.ok(at > 0, 'the digest appears in the uncompressed message');
  const tampered = Buffer.from(sig);
  tampered.write(digestOf('another image'), at); // same length, another image
  await refused(verifySimpleSignature(tampered, [signerKeyring]), 'policy', new RegExp(`signature by key ${signer.slice(-16)} does not verify`));
});

test('detached, armored, unsigned and non-OpenPGP inputs are refused with what they are', async () => {
  const payload = payloadFor(IMAGE_REF, manifestDigest);
  const detachedPath = join(dir, 'detached.sig');
  home.gpg(['--local-user', signer, '--detach-sign', '--output', detachedPath], payload);
  await refused(verifySimpleSignature(await readFile(detachedPath), [signerKeyring]), 'policy', /detached/);
  const armoredPath = join(dir, 'armored.asc');
  home.gpg(['--local-user', signer, '--armor', '--sign', '--output', armoredPath], payload);
  await refused(verifySimpleSignature(await readFile(armoredPath), [signerKeyring]), 'policy', /ASCII-armored/);
  const unsignedPath = join(dir, 'unsigned.gpg');
  home.gpg(['--store', '--output', unsignedPath], payload);
  await refused(verifySimpleSignature(await readFile(unsignedPath), [signerKeyring]), 'policy', /not signed/);
  await refused(verifySimpleSignature(payload, [signerKeyring]), 'policy', /corrupt or not an OpenPGP message/);
  const encryptedPath = join(dir, 'encrypted.gpg');
  home.gpg(['--pinentry-mode', 'loopback', '--passphrase', 'x', '--symmetric', '--output', encryptedPath], payload);
  await refused(verifySimpleSignature(await readFile(encryptedPath), [signerKeyring]), 'policy', /encrypted/);
});

test('a message signed by two keys is refused (containers/image accepts exactly one)', async () => {
  const twice = join(dir, 'twice.sig');
  home.gpg(['--local-user', signer, '--local-user', other, '--sign', '--output', twice], payloadFor(IMAGE_REF, manifestDigest));
  const both = join(dir, 'both.gpg');
  await writeFile(both, home.exportKeys([signer, other]));
  await refused(verifySimpleSignature(await readFile(twice), [both]), 'policy', /2 signatures/);
});

test('a signature by a key that has expired since is refused', async () => {
  // Made in 2020 with a key valid for a day: the signature was good then, not now.
  const expiring = home.generateKey('Short Lived <short@example.test>', { expire: '1d', fakedTime: '20200101T000000' });
  const sigPath = join(dir, 'expired.sig');
  home.gpg(['--faked-system-time', '20200101T010000', '--local-user', expiring, '--sign', '--output', sigPath], payloadFor(IMAGE_REF, manifestDigest));
  const keyring = join(dir, 'expired.gpg');
  await writeFile(keyring, home.exportKeys([expiring]));
  await refused(verifySimpleSignature(await readFile(sigPath), [keyring]), 'policy', new RegExp(`signing key ${expiring.slice(-16)} \\(${expiring}\\) is no longer valid`));
});

test('a signature by a revoked key is refused', async () => {
  const revoked = home.generateKey('Revoked <revoked@example.test>');
  const sigPath = join(dir, 'revoked.sig');
  home.gpg(['--local-user', revoked, '--sign', '--output', sigPath], payloadFor(IMAGE_REF, manifestDigest));
  const before = join(dir, 'not-yet-revoked.gpg');
  await writeFile(before, home.exportKeys([revoked]));
  assert.equal((await verifySimpleSignature(await readFile(sigPath), [before])).signerFingerprint, revoked);
  // gpg keeps a revocation certificate for every key; its armor line is escaped with ":".
  const cert = (await readFile(join(home.dir, 'openpgp-revocs.d', `${revoked}.rev`), 'utf8')).replace(/^:-----/m, '-----');
  home.gpg(['--import'], cert);
  const keyring = join(dir, 'revoked.gpg');
  await writeFile(keyring, home.exportKeys([revoked]));
  await refused(verifySimpleSignature(await readFile(sigPath), [keyring]), 'policy', /revoked/);
});

test('a signature made with a signing subkey names the primary key, as policy.json keys are listed', async () => {
  const primary = home.generateKey('With Subkey <subkey@example.test>');
  home.gpg(['--pinentry-mode', 'loopback', '--passphrase', '', '--quick-add-key', primary, 'ed25519', 'sign', 'never']);
  const sigPath = join(dir, 'subkey.sig');
  home.gpg(['--local-user', primary, '--sign', '--output', sigPath], payloadFor(IMAGE_REF, manifestDigest));
  const listing = home.gpg(['--list-packets', sigPath]);
  const issuer = /keyid ([0-9A-F]{16})/.exec(listing)?.[1];
  assert.ok(issuer !== undefined && !primary.endsWith(issuer), `gpg signed with the subkey (issuer ${issuer})`);
  const keyring = join(dir, 'subkey.gpg');
  await writeFile(keyring, home.exportKeys([primary]));
  assert.equal((await verifySimpleSignature(await readFile(sigPath), [keyring])).signerFingerprint, primary);
});

test('RSA keys (gpg\'s default kind) sign and verify both ways too', async () => {
  const rsa = home.generateKey('RSA Signer <rsa@example.test>', { algorithm: 'rsa3072' });
  const keyring = join(dir, 'rsa.gpg');
  await writeFile(keyring, home.exportKeys([rsa]));
  assert.equal((await verifySimpleSignature(await skopeoSign(rsa), [keyring])).signerFingerprint, rsa);
  const sigPath = join(dir, 'rsa-basalt.sig');
  await writeFile(sigPath, await createSimpleSignature(payloadFor(IMAGE_REF, manifestDigest), { keyId: rsa, gnupgHome: home.dir }));
  run('skopeo', ['standalone-verify', manifestPath, IMAGE_REF, rsa, sigPath], { env: home.env });
  await refused(verifySimpleSignature(await readFile(sigPath), [signerKeyring]), 'policy', /not in the given keyring/);
});
