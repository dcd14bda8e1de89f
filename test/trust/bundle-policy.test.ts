import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isBasaltError, type ErrorKind } from '../../src/oci/errors.js';
import { publicGoodTrustedRoot, parseTrustedRoot, trustedRootFromKeys, verifyBundle } from '../../src/trust/bundle/index.js';
import { SHARED } from '../harness/tools.js';

/**
 * What basalt adds around @sigstore/verify: the policy (keys, identity with patterns), the
 * artifact given as a digest, and the checks on the trust root. Real bundles from the
 * sigstore-conformance vectors, read in place.
 */
const CASES = join(SHARED, 'fixtures', 'sigstore-conformance', 'bundle-verify');
const file = (...parts: string[]): Buffer => readFileSync(join(CASES, ...parts));
const A_TXT = file('a.txt');
const IDENTITY = {
  subject: 'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main',
  issuer: 'https://token.actions.githubusercontent.com',
};
const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const otherKey = Buffer.from(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string);

function refusal(kind: ErrorKind, pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isBasaltError(e, kind), `expected a ${kind} error, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  };
}

describe('bundle verification policy', () => {
  const keyCase = { bundle: file('managed-key-and-trusted-root', 'bundle.sigstore.json'), key: file('managed-key-and-trusted-root', 'key.pub'), root: file('managed-key-and-trusted-root', 'trusted_root.json') };
  const keylessV3 = file('happy-path-v0.3', 'bundle.sigstore.json');
  const dsse = file('happy-path-intoto-in-dsse-v3', 'bundle.sigstore.json');

  it('accepts a key-signed bundle under any of several keys and says which', async () => {
    const verified = await verifyBundle(keyCase.bundle, { data: A_TXT }, { publicKeys: [otherKey, keyCase.key], trustedRoot: keyCase.root });
    assert.deepEqual(verified.signer, { kind: 'public-key', keyIndex: 1 });
    assert.equal(verified.content, 'message-signature');
  });

  it('takes the trust root as bytes or parsed JSON, and refuses the bundle under a root that does not list its log', async () => {
    const parsed = JSON.parse(keyCase.root.toString('utf8')) as Record<string, unknown>;
    assert.equal((await verifyBundle(keyCase.bundle, { data: A_TXT }, { publicKeys: [keyCase.key], trustedRoot: parsed })).transparencyLogEntries, 1);
    // Without it, the default public-good root does not know the staging log that logged it.
    await assert.rejects(verifyBundle(keyCase.bundle, { data: A_TXT }, { publicKeys: [keyCase.key] }), refusal('policy', /the transparency log's signed entry timestamp does not verify/));
  });

  it('refuses a key-signed bundle under a different, valid key', async () => {
    await assert.rejects(verifyBundle(keyCase.bundle, { data: A_TXT }, { publicKeys: [otherKey], trustedRoot: keyCase.root }), refusal('policy', /the signature does not verify with the given key/));
  });

  it('refuses a key-signed bundle under an identity-only policy, and a keyless one under a key-only policy', async () => {
    await assert.rejects(verifyBundle(keyCase.bundle, { data: A_TXT }, { identity: IDENTITY, trustedRoot: keyCase.root }), refusal('policy', /signed with a key, and the policy names no key/));
    await assert.rejects(verifyBundle(keylessV3, { data: A_TXT }, { publicKeys: [keyCase.key] }), refusal('policy', /Fulcio certificate, and the policy names only keys/));
  });

  it('matches the certificate identity exactly or by an anchored pattern', async () => {
    const ok = await verifyBundle(keylessV3, { data: A_TXT }, { identity: { subjectRegExp: 'https://github\\.com/sigstore-conformance/.*@refs/heads/main', issuerRegExp: 'https://token\\.actions\\.githubusercontent\\.com' } });
    assert.deepEqual(ok.signer, { kind: 'certificate', ...IDENTITY });
    // A pattern matching only part of the subject is not a match (cosign's would be).
    await assert.rejects(verifyBundle(keylessV3, { data: A_TXT }, { identity: { subjectRegExp: 'sigstore-conformance', issuer: IDENTITY.issuer } }), refusal('policy', /signed by "https:\/\/github.com\/sigstore-conformance.*", not \/sigstore-conformance\//));
    await assert.rejects(verifyBundle(keylessV3, { data: A_TXT }, { identity: { subject: IDENTITY.subject, issuer: 'https://accounts.google.com' } }), refusal('policy', /certificate issued for "https:\/\/token.actions.githubusercontent.com" identities, not https:\/\/accounts.google.com/));
  });

  it('binds a DSSE statement to an artifact given by digest', async () => {
    const verified = await verifyBundle(dsse, { digest: sha256(A_TXT) }, { identity: IDENTITY });
    assert.equal(verified.content, 'dsse-envelope');
    assert.equal(verified.dsse?.statement.predicateType, 'https://slsa.dev/provenance/v1');
    const wrong = sha256(Buffer.from('something else'));
    await assert.rejects(verifyBundle(dsse, { digest: wrong }, { identity: IDENTITY }), refusal('policy', new RegExp(`subjects do not include ${wrong}`)));
    await assert.rejects(verifyBundle(dsse, { data: Buffer.from('something else') }, { identity: IDENTITY }), refusal('policy', /subjects do not include/));
  });

  it('needs the bytes for a message signature, and a policy that names a signer', async () => {
    await assert.rejects(verifyBundle(keylessV3, { digest: sha256(A_TXT) }, { identity: IDENTITY }), refusal('unsupported', /message signature can only be verified against the artifact's bytes/));
    await assert.rejects(verifyBundle(keylessV3, { data: A_TXT }, {}), refusal('usage', /needs public keys or a keyless identity/));
    await assert.rejects(verifyBundle(keylessV3, { data: A_TXT }, { identity: { subject: IDENTITY.subject } }), refusal('usage', /needs an issuer/));
    await assert.rejects(verifyBundle(keylessV3, { data: A_TXT }, { identity: { subjectRegExp: '(', issuer: IDENTITY.issuer } }), refusal('usage', /not a valid regular expression/));
  });

  it('verifies with trust given as PEM CA certificates and log keys (containers-policy.json style)', async () => {
    // The public-good instance's own CA certificates and keys, taken out of its trusted root
    // and given back as PEM, as a sigstoreSigned policy's fulcio.caData / rekorPublicKeyData.
    const root = publicGoodTrustedRoot();
    const caPems = root.certificateAuthorities.flatMap((ca) => ca.certChain?.certificates.map((c) => Buffer.from(new X509Certificate(c.rawBytes).toString())) ?? []);
    const pemOf = (der: Buffer | undefined): Buffer => Buffer.from(createPublicKey({ key: der as Buffer, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'pem' }) as string);
    const rekorPems = root.tlogs.map((t) => pemOf(t.publicKey?.rawBytes));
    const ctPems = root.ctlogs.map((t) => pemOf(t.publicKey?.rawBytes));
    const withCt = trustedRootFromKeys({ certificateAuthorities: caPems, transparencyLogKeys: rekorPems, ctLogKeys: ctPems });
    const verified = await verifyBundle(keylessV3, { data: A_TXT }, { identity: IDENTITY, trustedRoot: withCt });
    assert.deepEqual(verified.signer, { kind: 'certificate', ...IDENTITY });
    // The certificate's SCT is checked: without its CT log's key the certificate is refused.
    const noCt = trustedRootFromKeys({ certificateAuthorities: caPems, transparencyLogKeys: rekorPems });
    await assert.rejects(verifyBundle(keylessV3, { data: A_TXT }, { identity: IDENTITY, trustedRoot: noCt }), refusal('policy', /signing certificate is not trusted \(SCT verification failed\)/));
    // Another Rekor key, or another CA: refused.
    const wrongRekor = trustedRootFromKeys({ certificateAuthorities: caPems, transparencyLogKeys: [otherKey], ctLogKeys: ctPems });
    await assert.rejects(verifyBundle(keylessV3, { data: A_TXT }, { identity: IDENTITY, trustedRoot: wrongRekor }), refusal('policy', /signed entry timestamp does not verify/));
    // The staging instance's CA (from another vector's trusted root) did not issue this certificate.
    const staging = JSON.parse(keyCase.root.toString('utf8')) as { certificateAuthorities: { certChain: { certificates: { rawBytes: string }[] } }[]; tlogs: { publicKey: { rawBytes: string } }[] };
    const stagingCaPems = staging.certificateAuthorities.flatMap((ca) => ca.certChain.certificates.map((c) => Buffer.from(new X509Certificate(Buffer.from(c.rawBytes, 'base64')).toString())));
    const wrongCa = trustedRootFromKeys({ certificateAuthorities: stagingCaPems, transparencyLogKeys: rekorPems, ctLogKeys: ctPems });
    await assert.rejects(verifyBundle(keylessV3, { data: A_TXT }, { identity: IDENTITY, trustedRoot: wrongCa }), refusal('policy', /signing certificate is not trusted \(Failed to verify certificate chain\)/));
    // A key-signed bundle logged to a (here: staging) Rekor, trusted by that Rekor's key alone.
    const stagingRekor = trustedRootFromKeys({ transparencyLogKeys: staging.tlogs.map((t) => pemOf(Buffer.from(t.publicKey.rawBytes, 'base64'))) });
    assert.equal((await verifyBundle(keyCase.bundle, { data: A_TXT }, { publicKeys: [keyCase.key], trustedRoot: stagingRekor })).transparencyLogEntries, 1);
    assert.throws(() => trustedRootFromKeys({ certificateAuthorities: [Buffer.from('not pem')] }), refusal('usage', /no PEM certificate/));
  });

  it('loads the public-good root shipped in @sigstore/tuf, and refuses a root that is not one', () => {
    const root = publicGoodTrustedRoot();
    assert.ok(root.tlogs.some((t) => t.baseUrl === 'https://rekor.sigstore.dev'));
    assert.ok(root.certificateAuthorities.length >= 1);
    assert.throws(() => parseTrustedRoot(Buffer.from('{"mediaType":"application/json"}')), refusal('invalid', /is not a sigstore trusted root/));
    assert.throws(() => parseTrustedRoot(Buffer.from('not json')), refusal('invalid', /not JSON/));
  });
});
