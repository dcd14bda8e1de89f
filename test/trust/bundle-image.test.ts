import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { digestOf } from '../../src/oci/digest.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { manifestBlob, type Descriptor } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { dockerTransport } from '../../src/oci/registry/transport.js';
import type { ImageSource } from '../../src/oci/transport.js';
import { COSIGN_SIGN_PREDICATE_TYPE, findImageBundles, referrersTag, verifyImageBundles } from '../../src/trust/bundle/index.js';
import { checkImagePolicy } from '../../src/trust/enforce.js';
import { parsePolicy } from '../../src/trust/policy.js';
import { startFaultProxy } from '../harness/fault-proxy.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { SHARED } from '../harness/tools.js';
import { makeImage, pushImage, streamOf, testOptions } from '../oci/registry/helpers.js';

/**
 * Bundles attached to images in a real registry (Debian's docker-registry, which has no
 * referrers API, so the `sha256-<hex>` referrers tag is what is found). The key-signed
 * bundles are built here as cosign v3 `sign --key … --tlog-upload=false` writes them (a
 * v0.3 bundle, public-key hint, DSSE envelope over an in-toto statement whose subject is
 * the manifest digest); the keyless one is a sigstore-conformance vector with a real
 * Fulcio certificate and Rekor entry.
 */
const BUNDLE_V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const IN_TOTO = 'application/vnd.in-toto+json';
const SLSA_V1 = 'https://slsa.dev/provenance/v1';
const CONFORMANCE = join(SHARED, 'fixtures', 'sigstore-conformance', 'bundle-verify');

/** DSSE pre-authentication encoding, written from the DSSE spec (not the library's). */
function pae(payloadType: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(payloadType)} ${payloadType} ${payload.length} `), payload]);
}

function statementFor(digest: string, predicateType = COSIGN_SIGN_PREDICATE_TYPE, annotations: Record<string, string> = {}): Buffer {
  const [algorithm, hex] = digest.split(':') as [string, string];
  return Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ digest: { [algorithm]: hex }, annotations }], predicateType, predicate: {} }));
}

/** A v0.3 bundle signed with `key`, no transparency-log entry (cosign --tlog-upload=false). */
function keyedBundle(key: KeyObject, statement: Buffer, tamper?: (s: Buffer) => Buffer): Buffer {
  const sig = sign('sha256', pae(IN_TOTO, statement), key);
  const payload = tamper ? tamper(statement) : statement;
  return Buffer.from(
    JSON.stringify({
      mediaType: BUNDLE_V03,
      verificationMaterial: { publicKey: { hint: '' }, tlogEntries: [] },
      dsseEnvelope: { payload: payload.toString('base64'), payloadType: IN_TOTO, signatures: [{ sig: sig.toString('base64'), keyid: '' }] },
    }),
  );
}

const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signerPem = Buffer.from(signer.publicKey.export({ type: 'spki', format: 'pem' }) as string);
const strangerPem = Buffer.from(stranger.publicKey.export({ type: 'spki', format: 'pem' }) as string);
const keyed = { publicKeys: [signerPem], requireTransparencyLog: false };

describe('sigstore bundles attached to images in a registry', () => {
  let reg: TestRegistry;
  const opts = testOptions();

  before(async () => {
    reg = await startRegistry({ flavour: 'open' });
  });
  after(async () => {
    await reg.stop();
  });

  async function pushNewImage(repo: string, tag: string): Promise<{ source: ImageSource; digest: string }> {
    const img = makeImage([500]);
    await pushImage(await dockerTransport.openDestination(`${reg.host}/${repo}:${tag}`, opts), img);
    return { source: await dockerTransport.openSource(`${reg.host}/${repo}:${tag}`, opts), digest: img.manifest.digest };
  }

  /**
   * Attaches bundles to `subject` as cosign does on a registry without a referrers API: one
   * referrer manifest per bundle (artifactType the bundle type, empty config, the bundle as
   * its layer, `subject` set), listed in an index under the referrers tag.
   */
  async function attach(repo: string, subject: Descriptor, bundles: Buffer[], indexTag = referrersTag(subject.digest)): Promise<string[]> {
    const dest = await dockerTransport.openDestination(`${reg.host}/${repo}:${indexTag}`, opts);
    const empty = Buffer.from('{}');
    const emptyDesc = { mediaType: MediaType.OciEmpty, digest: digestOf(empty), size: 2 };
    await dest.putBlob(streamOf(empty), emptyDesc);
    const listed: Descriptor[] = [];
    for (const bundle of bundles) {
      const layer = { mediaType: BUNDLE_V03, digest: digestOf(bundle), size: bundle.length };
      await dest.putBlob(streamOf(bundle), layer);
      const referrer = manifestBlob({ schemaVersion: 2, mediaType: MediaType.OciManifest, artifactType: BUNDLE_V03, config: emptyDesc, layers: [layer], subject });
      await dest.putManifest(referrer, { top: false });
      listed.push({ mediaType: MediaType.OciManifest, digest: referrer.digest, size: referrer.bytes.length, artifactType: BUNDLE_V03 });
    }
    await dest.putManifest(referrersIndex(listed.map((d) => d.digest)), { top: true });
    await dest.commit();
    return listed.map((d) => d.digest);
  }

  function referrersIndex(digests: string[]): ReturnType<typeof manifestBlob> {
    return manifestBlob({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: digests.map((d) => ({ mediaType: MediaType.OciManifest, digest: d, size: 1, artifactType: BUNDLE_V03 })) });
  }

  const subjectOf = (digest: string): Descriptor => ({ mediaType: MediaType.OciManifest, digest, size: 0 });

  it('finds a key-signed cosign v3 signature through the referrers tag and verifies it', async () => {
    const { source, digest } = await pushNewImage('app/signed', 'v1');
    const bundle = keyedBundle(signer.privateKey, statementFor(digest, COSIGN_SIGN_PREDICATE_TYPE, { team: 'platform' }));
    const [referrer] = await attach('app/signed', subjectOf(digest), [bundle]);
    const found = await findImageBundles(source, digest);
    assert.deepEqual(found, [{ bytes: bundle, referrer }]);
    // The registry has no referrers API: the lookup asked it, got 404, and read the tag.
    assert.match(reg.logs(), new RegExp(`GET /v2/app/signed/referrers/${digest}[^\\n]*" 404`));
    const verified = await verifyImageBundles(source, digest, keyed);
    assert.equal(verified.length, 1);
    assert.deepEqual(verified[0]?.signer, { kind: 'public-key', keyIndex: 0 });
    assert.equal(verified[0]?.content, 'dsse-envelope');
    assert.equal(verified[0]?.referrer, referrer);
    assert.deepEqual(verified[0]?.annotations, { team: 'platform' });
    assert.equal(verified[0]?.transparencyLogEntries, 0);
  });

  it('a sigstoreSigned policy (keyData) accepts a key-signed bundle through checkImagePolicy, and refuses another key', async () => {
    const { source, digest } = await pushNewImage('app/policy', 'v1');
    await attach('app/policy', subjectOf(digest), [keyedBundle(signer.privateKey, statementFor(digest))]);
    const policyFor = (pem: Buffer): ReturnType<typeof parsePolicy> =>
      parsePolicy(JSON.stringify({ default: [{ type: 'reject' }], transports: { docker: { [`${reg.host}/app`]: [{ type: 'sigstoreSigned', keyData: pem.toString('base64'), signedIdentity: { type: 'matchRepository' } }] } } }), 'test-policy.json');
    const registriesD = { dir: '(test)', defaultDocker: { useSigstoreAttachments: true }, docker: new Map() };
    const name = `docker://${reg.host}/app/policy:v1`;
    const decision = await checkImagePolicy(source, name, { policy: policyFor(signerPem), registriesD, transport: opts });
    const signatures = decision.requirements.flatMap((r) => r.signatures);
    assert.equal(signatures.length, 1);
    assert.equal(signatures[0]?.format, 'sigstore-bundle');
    await assert.rejects(checkImagePolicy(source, name, { policy: policyFor(strangerPem), registriesD, transport: opts }), (e: unknown) => isBasaltError(e, 'policy') && /sigstoreSigned/.test((e as Error).message));
  });

  it('requires a transparency-log entry unless the policy waives it for keys', async () => {
    const { source, digest } = await pushNewImage('app/nolog', 'v1');
    await attach('app/nolog', subjectOf(digest), [keyedBundle(signer.privateKey, statementFor(digest))]);
    await assert.rejects(verifyImageBundles(source, digest, { publicKeys: [signerPem] }), (e: unknown) => {
      assert.ok(isBasaltError(e, 'policy'));
      assert.match(e.message, /timestamps do not verify \(expected 1 tlog timestamps, got 0\)/);
      return true;
    });
  });

  it('refuses a signature made with another key, and accepts it when that key is among several', async () => {
    const { source, digest } = await pushNewImage('app/otherkey', 'v1');
    await attach('app/otherkey', subjectOf(digest), [keyedBundle(stranger.privateKey, statementFor(digest))]);
    await assert.rejects(verifyImageBundles(source, digest, keyed), (e: unknown) => {
      assert.ok(isBasaltError(e, 'policy'));
      assert.match(e.message, /none of the 1 sigstore bundle\(s\).*the signature does not verify with the given key/);
      return true;
    });
    const verified = await verifyImageBundles(source, digest, { publicKeys: [signerPem, strangerPem], requireTransparencyLog: false });
    assert.deepEqual(verified[0]?.signer, { kind: 'public-key', keyIndex: 1 });
  });

  it('refuses a valid signature of another image attached to this one (substitution)', async () => {
    const signed = await pushNewImage('app/swap', 'good');
    const other = await pushNewImage('app/swap', 'evil');
    const goodBundle = keyedBundle(signer.privateKey, statementFor(signed.digest));
    // The good image's signature, presented as a referrer of the other image.
    await attach('app/swap', subjectOf(other.digest), [goodBundle]);
    await assert.rejects(verifyImageBundles(other.source, other.digest, keyed), (e: unknown) => {
      assert.ok(isBasaltError(e, 'policy'));
      assert.match(e.message, new RegExp(`statement's subjects do not include ${other.digest}`));
      return true;
    });
    // And a referrers index copied wholesale from the good image: its referrers name another
    // subject, so nothing is found for this one.
    const goodReferrers = await attach('app/swap', subjectOf(signed.digest), [goodBundle]);
    const dest = await dockerTransport.openDestination(`${reg.host}/app/swap:${referrersTag(other.digest)}`, opts);
    await dest.putManifest(referrersIndex(goodReferrers), { top: true });
    await dest.commit();
    assert.deepEqual(await findImageBundles(other.source, other.digest), []);
    await assert.rejects(verifyImageBundles(other.source, other.digest, keyed), /no sigstore bundle is attached/);
    // The good image itself still verifies.
    assert.equal((await verifyImageBundles(signed.source, signed.digest, keyed)).length, 1);
  });

  it('refuses a bundle whose statement was changed after signing', async () => {
    const { source, digest } = await pushNewImage('app/tampered', 'v1');
    const tampered = keyedBundle(signer.privateKey, statementFor(digest), (s) => Buffer.from(s.toString('utf8').replace('"predicate":{}', '"predicate":{"x":1}')));
    await attach('app/tampered', subjectOf(digest), [tampered]);
    await assert.rejects(verifyImageBundles(source, digest, keyed), /the signature does not verify with the given key/);
  });

  it('does not take an attestation about the image, by the right key, for a signature', async () => {
    const { source, digest } = await pushNewImage('app/attested', 'v1');
    await attach('app/attested', subjectOf(digest), [keyedBundle(signer.privateKey, statementFor(digest, SLSA_V1))]);
    await assert.rejects(verifyImageBundles(source, digest, keyed), new RegExp(`predicate type ${SLSA_V1}, not ${COSIGN_SIGN_PREDICATE_TYPE}`));
    assert.equal((await verifyImageBundles(source, digest, keyed, { predicateType: SLSA_V1 })).length, 1);
  });

  it('accepts an image with one good bundle among bad ones, and refuses an unsigned image', async () => {
    const { source, digest } = await pushNewImage('app/mixed', 'v1');
    await attach('app/mixed', subjectOf(digest), [Buffer.from('{"mediaType":'), keyedBundle(stranger.privateKey, statementFor(digest)), keyedBundle(signer.privateKey, statementFor(digest))]);
    const verified = await verifyImageBundles(source, digest, keyed);
    assert.equal(verified.length, 1);
    const unsigned = await pushNewImage('app/unsigned', 'v1');
    await assert.rejects(verifyImageBundles(unsigned.source, unsigned.digest, keyed), (e: unknown) => {
      assert.ok(isBasaltError(e, 'policy'));
      assert.match(e.message, /no sigstore bundle is attached/);
      return true;
    });
  });

  it('verifies a real keyless bundle (Fulcio certificate, Rekor entry) found through the registry', async () => {
    // sigstore-conformance's happy-path-intoto-in-dsse-v3 attests a.txt (SLSA provenance,
    // public-good instance). Attached to a.txt's digest in the registry, it is found and
    // verified through the same path as an image signature, against the root shipped in
    // @sigstore/tuf; what it signs is a.txt's digest, so it is looked up by that digest.
    const { source } = await pushNewImage('app/keyless', 'v1');
    const artifactDigest = `sha256:${createHash('sha256').update(readFileSync(join(CONFORMANCE, 'a.txt'))).digest('hex')}`;
    const bundle = readFileSync(join(CONFORMANCE, 'happy-path-intoto-in-dsse-v3', 'bundle.sigstore.json'));
    await attach('app/keyless', subjectOf(artifactDigest), [bundle]);
    const identity = {
      subject: 'https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main',
      issuer: 'https://token.actions.githubusercontent.com',
    };
    const verified = await verifyImageBundles(source, artifactDigest, { identity }, { predicateType: SLSA_V1 });
    assert.deepEqual(verified[0]?.signer, { kind: 'certificate', ...identity });
    assert.equal(verified[0]?.transparencyLogEntries, 1);
    await assert.rejects(verifyImageBundles(source, artifactDigest, { identity: { ...identity, subject: 'https://github.com/someone/else' } }, { predicateType: SLSA_V1 }), /signed by "https:\/\/github.com\/sigstore-conformance/);
    // Not a cosign image signature: refused under the default predicate type.
    await assert.rejects(verifyImageBundles(source, artifactDigest, { identity }), /predicate type https:\/\/slsa.dev\/provenance\/v1/);
  });

  it('uses the referrers API where the registry has one', async () => {
    // A proxy answers the referrers endpoint as an OCI 1.1 registry would; manifests and
    // blobs come from the real registry. No referrers tag exists, so only the API can find it.
    const proxy = await startFaultProxy(reg.host);
    try {
      const viaProxy = testOptions();
      const img = makeImage([300]);
      await pushImage(await dockerTransport.openDestination(`${proxy.host}/app/api:v1`, viaProxy), img);
      const source = await dockerTransport.openSource(`${proxy.host}/app/api:v1`, viaProxy);
      const digest = img.manifest.digest;
      const referrers = await attach('app/api', subjectOf(digest), [keyedBundle(signer.privateKey, statementFor(digest))], 'not-the-referrers-tag');
      // The answer also names a manifest the registry does not have (first): it is skipped.
      const index = referrersIndex([`sha256:${'1'.repeat(64)}`, ...referrers]);
      proxy.rules.push({ method: 'GET', path: new RegExp(`/referrers/${digest}`), action: { kind: 'status', status: 200, headers: { 'content-type': MediaType.OciIndex }, body: index.bytes.toString('utf8') } });
      const verified = await verifyImageBundles(source, digest, keyed);
      assert.equal(verified[0]?.referrer, referrers[0]);
      assert.ok(!proxy.log.some((e) => e.url.includes(`/manifests/${referrersTag(digest)}`)), 'the referrers tag was not consulted');
      // A registry failing the referrers request is an error, not "unsigned".
      proxy.rules.push({ method: 'GET', path: /\/referrers\//, times: 10, action: { kind: 'status', status: 403, body: '{"errors":[{"code":"DENIED","message":"no"}]}' } });
      await assert.rejects(findImageBundles(source, digest), (e: unknown) => isBasaltError(e, 'denied'));
    } finally {
      await proxy.stop();
    }
  });

  it('refuses sources that are not registries, naming the source', async () => {
    const notRegistry: ImageSource = {
      name: 'oci:/tmp/layout:v1',
      getManifest: async () => {
        throw new Error('not reached');
      },
      getBlob: async () => {
        throw new Error('not reached');
      },
      close: async () => {},
    };
    await assert.rejects(findImageBundles(notRegistry, `sha256:${'0'.repeat(64)}`), (e: unknown) => isBasaltError(e, 'unsupported') && e.message.startsWith('oci:/tmp/layout:v1'));
  });
});
