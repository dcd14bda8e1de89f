import { createHash } from 'node:crypto';
import {
  BUNDLE_V01_MEDIA_TYPE,
  BUNDLE_V02_MEDIA_TYPE,
  BUNDLE_V03_LEGACY_MEDIA_TYPE,
  BUNDLE_V03_MEDIA_TYPE,
  bundleFromJSON,
  ValidationError,
  type Bundle,
} from '@sigstore/bundle';
import { X509Certificate } from '@sigstore/core';
import { HashAlgorithm, type TrustedRoot } from '@sigstore/protobuf-specs';
import { PolicyError, toSignedEntity, toTrustMaterial, VerificationError, Verifier, type SignedEntity, type Signer, type TrustMaterial } from '@sigstore/verify';
import { BasaltError } from '../../oci/errors.js';
import { checkIdentity, checkPolicyShape, loadKeys, rootFrom, type BundleVerificationPolicy, type VerifiedSigner } from './policy.js';
import { isRekorV2Entry, timestampTimes, verifyRekorV2Entry } from './rekor-v2.js';
import { parseStatement, statementCovers, type InTotoStatement } from './statement.js';

export type { BundleVerificationPolicy, CertificateIdentity, VerifiedSigner } from './policy.js';

/** What was signed: the bytes themselves, or (DSSE statements only) their digest. */
export type BundleArtifact = { data: Buffer } | { digest: string };

export interface VerifiedBundle {
  mediaType: string;
  content: 'message-signature' | 'dsse-envelope';
  signer: VerifiedSigner;
  /** DSSE bundles: the signed payload and its parsed in-toto statement. */
  dsse?: { payloadType: string; payload: Buffer; statement: InTotoStatement };
  /** Transparency-log entries verified (inclusion proof/checkpoint or signed entry timestamp). */
  transparencyLogEntries: number;
  /** RFC 3161 timestamps verified against the root's timestamp authorities. */
  signedTimestamps: number;
}

const KNOWN_MEDIA_TYPES: ReadonlySet<string> = new Set([BUNDLE_V01_MEDIA_TYPE, BUNDLE_V02_MEDIA_TYPE, BUNDLE_V03_LEGACY_MEDIA_TYPE, BUNDLE_V03_MEDIA_TYPE]);

/** Why the sigstore library refused, in words a user can act on. */
const CODE_REASONS: Record<string, string> = {
  TLOG_INCLUSION_PROOF_ERROR: 'the transparency-log inclusion proof or checkpoint does not verify',
  TLOG_INCLUSION_PROMISE_ERROR: 'the transparency log\'s signed entry timestamp does not verify',
  TLOG_MISSING_INCLUSION_ERROR: 'the transparency-log entry carries no inclusion proof or promise',
  TLOG_BODY_ERROR: 'the transparency-log entry does not record this signature',
  CERTIFICATE_ERROR: 'the signing certificate is not trusted',
  PUBLIC_KEY_ERROR: 'the signing key is not trusted',
  SIGNATURE_ERROR: 'the signature does not verify',
  TIMESTAMP_ERROR: 'the bundle\'s timestamps do not verify',
  NOT_IMPLEMENTED_ERROR: 'the bundle uses something the sigstore library does not implement',
  UNTRUSTED_SIGNER_ERROR: 'the signer is not the one the policy names',
};

function refuse(what: string, reason: string, hint: string, cause?: unknown): BasaltError {
  return new BasaltError('policy', `${what}: ${reason}`, { hint, ...(cause !== undefined ? { cause } : {}) });
}

function libraryRefusal(what: string, e: unknown): BasaltError {
  if (e instanceof BasaltError) return e;
  if (e instanceof VerificationError || e instanceof PolicyError) {
    const reason = CODE_REASONS[e.code] ?? e.code;
    return refuse(what, `${reason} (${e.message})`, 'the bundle was altered, made for something else, or signed outside this trust root; do not use the artifact', e);
  }
  // Parsers inside the library (ASN.1, X.509, RFC 3161) throw plain errors on malformed data.
  return refuse(what, `the bundle cannot be processed (${e instanceof Error ? e.message : String(e)})`, 'the bundle is corrupt; ask the signer for a new one', e);
}

function parseBundle(bytes: Buffer, what: string): Bundle {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw refuse(what, `not JSON (${(e as Error).message})`, 'the bundle is truncated or not a sigstore bundle', e);
  }
  const mediaType = (json as { mediaType?: unknown } | null)?.mediaType;
  if (typeof mediaType !== 'string' || !KNOWN_MEDIA_TYPES.has(mediaType))
    throw refuse(what, `media type ${JSON.stringify(mediaType)} is not a sigstore bundle version basalt knows (v0.1 to v0.3)`, 'the bundle is from a newer sigstore client or not a bundle');
  try {
    return bundleFromJSON(json);
  } catch (e) {
    const fields = e instanceof ValidationError && e.fields !== undefined ? ` (${e.fields.join(', ')})` : '';
    throw refuse(what, `malformed bundle: ${(e as Error).message}${fields}`, 'the bundle is corrupt; ask the signer for a new one', e);
  }
}

/**
 * A leaf certificate alone (or with intermediates) is what a bundle may carry; a root in the
 * chain is refused, as the bundle specification requires: the trust root, not the bundle,
 * decides which roots are trusted.
 */
function checkCertificateChain(bundle: Bundle, what: string): void {
  const material = bundle.verificationMaterial.content;
  if (material.$case !== 'x509CertificateChain') return;
  for (const [i, raw] of material.x509CertificateChain.certificates.entries()) {
    let cert: X509Certificate;
    try {
      cert = X509Certificate.parse(raw.rawBytes);
    } catch (e) {
      throw refuse(what, `certificate ${i} of the chain does not parse (${(e as Error).message})`, 'the bundle is corrupt', e);
    }
    if (cert.isCA && cert.subject.equals(cert.issuer))
      throw refuse(what, `the certificate chain contains a root certificate (number ${i})`, 'a bundle must not carry its own root; re-create it with a current sigstore client');
  }
}

/** The bytes the library verifies a message signature over; checks the bundle's digest hint too. */
function messageArtifact(bundle: Bundle, artifact: BundleArtifact, what: string): Buffer | undefined {
  if (bundle.content.$case !== 'messageSignature') return undefined;
  if (!('data' in artifact))
    throw new BasaltError('unsupported', `${what}: a message signature can only be verified against the artifact's bytes, not a digest`, {
      hint: 'pass the artifact itself',
    });
  const hint = bundle.content.messageSignature.messageDigest;
  // The digest field is an unauthenticated hint, but one that disagrees means the bundle was
  // made for another artifact: say so rather than report a bare signature failure.
  if (hint !== undefined && hint.algorithm === HashAlgorithm.SHA2_256 && !createHash('sha256').update(artifact.data).digest().equals(hint.digest))
    throw refuse(what, 'the bundle\'s message digest is not the artifact\'s sha256', 'this bundle was made for another artifact, or the artifact was changed');
  return artifact.data;
}

/** For a DSSE bundle: the statement, which must name the artifact's digest among its subjects. */
function checkStatement(bundle: Bundle, artifact: BundleArtifact, what: string): VerifiedBundle['dsse'] {
  if (bundle.content.$case !== 'dsseEnvelope') return undefined;
  const { payloadType, payload } = bundle.content.dsseEnvelope;
  const statement = parseStatement(payloadType, payload, what);
  const digest = 'data' in artifact ? `sha256:${createHash('sha256').update(artifact.data).digest('hex')}` : artifact.digest;
  if (!statementCovers(statement, digest))
    throw refuse(what, `the signed statement's subjects do not include ${digest}`, 'the attestation is for another artifact (or the artifact was changed)');
  return { payloadType, payload, statement };
}

// Parsing a root's certificates and keys takes ~20 ms: done once per root object (the
// public-good root is one object for the life of the process).
const materials = new WeakMap<TrustedRoot, TrustMaterial>();
function trustMaterialFor(root: TrustedRoot): TrustMaterial {
  let material = materials.get(root);
  if (material === undefined) {
    material = toTrustMaterial(root);
    materials.set(root, material);
  }
  return material;
}

/**
 * For a bundle logged to Rekor v2: the entity the library verifies without its log entries
 * (dated by its RFC 3161 timestamps instead, one at least), and the check of those entries
 * basalt runs once the library accepted the rest. Undefined for Rekor v1 bundles.
 */
function rekorV2Plan(bundle: Bundle, entity: SignedEntity, what: string): { entity: SignedEntity; verify(root: TrustedRoot): void } | undefined {
  const entries = bundle.verificationMaterial.tlogEntries;
  const v2 = entries.filter(isRekorV2Entry);
  if (v2.length === 0) return undefined;
  if (v2.length !== entries.length)
    throw new BasaltError('unsupported', `${what}: the bundle mixes Rekor v1 and v2 entries`, { hint: 'ask the signer for a bundle from one log' });
  return {
    entity: { ...entity, tlogEntries: [], timestamps: entity.timestamps.filter((t) => t.$case === 'timestamp-authority') },
    verify(root) {
      let times: Date[];
      try {
        times = timestampTimes(bundle);
      } catch (e) {
        throw libraryRefusal(what, e);
      }
      for (const entry of v2) verifyRekorV2Entry(entry, bundle, root, times, what);
    },
  };
}

/**
 * Verifies a sigstore bundle (v0.1–v0.3 JSON, cosign v3's default signature format) for an
 * artifact under a policy, offline, with @sigstore/verify: signature, certificate chain to a
 * trusted Fulcio CA and its SCT, transparency-log inclusion (proof + checkpoint, or signed
 * entry timestamp) against the trust root, RFC 3161 timestamps, that the log entry records
 * this signature, and then basalt's own checks: identity, the DSSE statement's subject, no
 * root in the chain. Resolves with what was verified; rejects with a BasaltError ('policy'
 * for a bundle that does not satisfy the policy, 'usage' for a policy that makes no sense,
 * 'invalid' for a broken trust root, 'unsupported' for a digest-only message signature).
 */
export async function verifyBundle(bundleBytes: Buffer, artifact: BundleArtifact, policy: BundleVerificationPolicy, what = 'sigstore bundle'): Promise<VerifiedBundle> {
  checkPolicyShape(policy);
  if ('digest' in artifact && !/^sha(256|512):[0-9a-f]+$/i.test(artifact.digest))
    throw new BasaltError('usage', `artifact digest ${JSON.stringify(artifact.digest)} is not sha256:<hex> or sha512:<hex>`);
  const bundle = parseBundle(bundleBytes, what);
  checkCertificateChain(bundle, what);
  const root = rootFrom(policy);
  const data = messageArtifact(bundle, artifact, what);
  let entity: SignedEntity;
  try {
    entity = toSignedEntity(bundle, data);
  } catch (e) {
    throw libraryRefusal(what, e);
  }
  const rekorV2 = rekorV2Plan(bundle, entity, what);
  if (rekorV2) entity = rekorV2.entity;
  // The log requirement: a Rekor v1 entry verified by the library, or the v2 ones verified here.
  const logThreshold = (required: boolean): number => (required && !rekorV2 ? 1 : 0);
  const tsaThreshold = rekorV2 ? 1 : 0;
  const afterLibrary = (): void => rekorV2?.verify(root);
  const counts = {
    transparencyLogEntries: bundle.verificationMaterial.tlogEntries.length,
    signedTimestamps: bundle.verificationMaterial.timestampVerificationData?.rfc3161Timestamps.length ?? 0,
  };
  const content = bundle.content.$case === 'dsseEnvelope' ? ('dsse-envelope' as const) : ('message-signature' as const);
  // Called only once the library accepted the signature: the statement is then authentic.
  const verified = (signer: VerifiedSigner): VerifiedBundle => {
    const dsse = checkStatement(bundle, artifact, what);
    return { mediaType: bundle.mediaType, content, signer, ...(dsse ? { dsse } : {}), ...counts };
  };

  if (entity.key.$case === 'public-key') {
    if (policy.publicKeys === undefined || policy.publicKeys.length === 0)
      throw refuse(what, 'the bundle is signed with a key, and the policy names no key', 'pass the signer\'s public key');
    const keys = loadKeys(policy.publicKeys);
    const requireLog = policy.requireTransparencyLog ?? true;
    let firstFailure: unknown;
    for (const [keyIndex, publicKey] of keys.entries()) {
      // The bundle's key hint is informational; every key the policy trusts is tried.
      const material: TrustMaterial = { ...trustMaterialFor(root), publicKey: () => ({ publicKey, validFor: () => true }) };
      try {
        new Verifier(material, { tlogThreshold: logThreshold(requireLog), tsaThreshold, ctlogThreshold: 0 }).verify(entity);
      } catch (e) {
        // A signature failure under one key is expected when several are trusted; anything
        // else (log, timestamps) fails the same way under every key.
        if (!(e instanceof VerificationError && e.code === 'SIGNATURE_ERROR')) throw libraryRefusal(what, e);
        firstFailure ??= e;
        continue;
      }
      afterLibrary();
      return verified({ kind: 'public-key', keyIndex });
    }
    throw refuse(what, `the signature does not verify with ${keys.length === 1 ? 'the given key' : `any of the ${keys.length} given keys`}`, 'the bundle was signed with another key, or altered', firstFailure);
  }

  if (policy.identity === undefined)
    throw refuse(what, 'the bundle is signed with a Fulcio certificate, and the policy names only keys', 'verify it with the signer\'s identity and issuer instead of a key');
  let signer: Signer;
  try {
    signer = new Verifier(trustMaterialFor(root), { tlogThreshold: logThreshold(true), tsaThreshold, ctlogThreshold: 1 }).verify(entity);
  } catch (e) {
    throw libraryRefusal(what, e);
  }
  afterLibrary();
  return verified(checkIdentity(signer, policy.identity, what));
}
