import type { KeyObject } from 'node:crypto';
import { BasaltError, isBasaltError } from '../oci/errors.js';
import { digestOf, parseDigest } from '../oci/digest.js';
import type { ImageSource, TransportOptions } from '../oci/transport.js';
import { CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, readCosignSignatures, REKOR_BUNDLE_ANNOTATION, SIGNATURE_ANNOTATION, type CosignSignature } from './cosign.js';
import type { FulcioTrust } from './fulcio.js';
import { loggedKeyIs, verifyRekorSet, type RekorEntry } from './rekor-set.js';
import { BUNDLE_REFERENCE, verifyBundleAttachments } from './bundle-requirement.js';
import { imageIdentity, type ImageIdentity } from './image-identity.js';
import { identityMatches } from './identity-match.js';
import { loadPublicKey, parsePublicKey, verifyBytes } from './keys.js';
import { readLookasideSignatures } from './lookaside.js';
import { COSIGN_SIGNATURE_TYPE, parsePayload, SIMPLE_SIGNING_TYPE, type PayloadType } from './payload.js';
import { verifySimpleSignature } from './pgp.js';
import { acceptsUnsigned, requirementsFor, type KeySource, type Policy, type Requirement, type SignedIdentity } from './policy.js';
import { signatureStorageFor, type RegistriesD, type SignatureStorage } from './registries-d.js';

/**
 * The one place an image is judged against the signature policy. Image copy, install and
 * update call checkImagePolicy with the source they are about to read from, before writing
 * anything; a refusal is a BasaltError of kind 'policy' naming every reason.
 */
export interface PolicyCheckOptions {
  policy: Policy;
  registriesD: RegistriesD;
  /** How signature images are read (registry credentials, TLS, store root). */
  transport: TransportOptions;
  /** bootc's --enforce-container-sigpolicy: refuse a policy that lets unsigned images in. */
  enforceContainerSigpolicy?: boolean;
  /** Read simple signatures from here for any image with a registry name (overrides registries.d). */
  lookaside?: string;
  /** Read cosign attachments whatever registries.d says (`basalt verify --key`: asking is the opt-in). */
  alwaysReadAttachments?: boolean;
}

export interface AcceptedSignature {
  format: 'cosign' | 'simple-signing' | 'sigstore-bundle';
  /** The signature's docker-reference claim. */
  dockerReference: string;
  /** cosign: the payload layer digest; simple signing: the signer's fingerprint. */
  id: string;
}

export interface RequirementResult {
  type: Requirement['type'];
  accepted: boolean;
  signatures: AcceptedSignature[];
  /** Why signatures were not accepted (one line each). */
  reasons: string[];
}

export interface PolicyDecision {
  image: string;
  manifestDigest: string;
  /** Which policy entry applied: `default` or `transports.docker["host/repo"]`. */
  scope: string;
  policyFile: string;
  requirements: RequirementResult[];
}

/** Everything evaluation reads about one image, fetched at most once (exported for the bundle verifier). */
export class ImageEvidence {
  private cosign: Promise<CosignSignature[]> | undefined;
  private simple: Promise<Buffer[]> | undefined;
  readonly storage: SignatureStorage;
  /** How attachments are read (registry credentials, TLS, store root). */
  readonly transport: TransportOptions;

  constructor(
    readonly imageName: string,
    readonly identity: ImageIdentity,
    readonly manifestDigest: string,
    readonly manifestBytes: Buffer,
    private readonly options: PolicyCheckOptions,
  ) {
    this.transport = options.transport;
    const storage = signatureStorageFor(options.registriesD, identity);
    this.storage = options.alwaysReadAttachments ? { ...storage, useSigstoreAttachments: true } : storage;
  }

  cosignSignatures(): Promise<CosignSignature[]> {
    if (!this.storage.useSigstoreAttachments) return Promise.resolve([]);
    this.cosign ??= readCosignSignatures(this.identity.signatureImageName(this.manifestDigest), this.options.transport);
    return this.cosign;
  }

  simpleSignatures(): Promise<Buffer[]> {
    const base = this.options.lookaside ?? this.storage.lookaside;
    const ref = this.identity.dockerReference;
    if (base === undefined || ref === undefined) return Promise.resolve([]);
    this.simple ??= readLookasideSignatures(base, ref.repository, this.manifestDigest);
    return this.simple;
  }
}

export async function checkImagePolicy(source: ImageSource, imageName: string, options: PolicyCheckOptions): Promise<PolicyDecision> {
  const decision = await evaluateImagePolicy(source, imageName, options);
  const refused = decision.requirements.filter((r) => !r.accepted);
  if (refused.length > 0) {
    const reasons = refused.flatMap((r) => (r.reasons.length ? r.reasons.map((why) => `${r.type}: ${why}`) : [`${r.type}`]));
    throw new BasaltError('policy', `${imageName} (${decision.manifestDigest}) is refused by ${decision.policyFile} (${decision.scope}): ${reasons.join('; ')}`, {
      hint: 'sign the image with a trusted key (basalt sign), or check the keys and identities in the policy',
    });
  }
  return decision;
}

/** Like checkImagePolicy, but returns the decision instead of throwing on refusal (basalt verify). */
export async function evaluateImagePolicy(source: ImageSource, imageName: string, options: PolicyCheckOptions): Promise<PolicyDecision> {
  const identity = imageIdentity(imageName, source.location);
  const { scope, requirements } = requirementsFor(options.policy, identity);
  if (options.enforceContainerSigpolicy) {
    if (acceptsUnsigned(options.policy.default))
      throw new BasaltError('policy', `${options.policy.source}: the default policy accepts images without signatures, refused by --enforce-container-sigpolicy`, { hint: 'make "default" [{"type": "reject"}] and trust your keys per scope (basalt policy init)' });
    if (acceptsUnsigned(requirements))
      throw new BasaltError('policy', `${options.policy.source}: ${scope} accepts ${imageName} without a signature, refused by --enforce-container-sigpolicy`, { hint: 'require signedBy or sigstoreSigned for this scope' });
  }
  const top = await source.getManifest();
  const manifestDigest = digestOf(top.bytes);
  const named = identity.dockerReference?.digest;
  if (named !== undefined && digestOf(top.bytes, parseDigest(named).algorithm) !== named)
    throw new BasaltError('integrity', `${imageName}: the manifest served has digest ${manifestDigest}, not the ${named} it was asked for`, { hint: 'the source is corrupt or was tampered with' });
  const evidence = new ImageEvidence(imageName, identity, manifestDigest, top.bytes, options);
  const results: RequirementResult[] = [];
  for (const requirement of requirements) results.push(await evaluateRequirement(requirement, evidence));
  return { image: imageName, manifestDigest, scope, policyFile: options.policy.source, requirements: results };
}

async function evaluateRequirement(requirement: Requirement, evidence: ImageEvidence): Promise<RequirementResult> {
  switch (requirement.type) {
    case 'insecureAcceptAnything':
      return { type: requirement.type, accepted: true, signatures: [], reasons: [] };
    case 'reject':
      return { type: requirement.type, accepted: false, signatures: [], reasons: ['the policy rejects every image in this scope'] };
    case 'sigstoreSigned':
      return verifySigstoreAttachments(requirement, evidence);
    case 'signedBy':
      return verifySignedBy(requirement, evidence);
  }
}

async function loadKeys(keys: KeySource): Promise<KeyObject[]> {
  const out: KeyObject[] = [];
  for (const p of keys.paths) out.push(await loadPublicKey(p));
  keys.data.forEach((d, i) => out.push(parsePublicKey(d, `keyData[${i}] of the policy`)));
  return out;
}

/** Checks a verified payload's claims against the image; returns why it does not apply, or undefined. */
function payloadMismatch(payloadBytes: Buffer, type: PayloadType, evidence: ImageEvidence, rule: SignedIdentity, what: string): { reference: string } | { reason: string } {
  let payload;
  try {
    payload = parsePayload(payloadBytes, [type], what);
  } catch (e) {
    if (isBasaltError(e)) return { reason: e.message };
    throw e;
  }
  let expected: string;
  try {
    expected = digestOf(evidence.manifestBytes, parseDigest(payload.manifestDigest).algorithm);
  } catch {
    return { reason: `${what}: unsupported digest ${payload.manifestDigest}` };
  }
  if (payload.manifestDigest !== expected)
    return { reason: `${what} is for manifest ${payload.manifestDigest}, not this image's ${evidence.manifestDigest} (a signature of another image)` };
  if (!identityMatches(rule, evidence.identity.dockerReference, payload.dockerReference))
    return { reason: `${what} is for "${payload.dockerReference}", which does not match ${evidence.imageName} under signedIdentity ${rule.type}` };
  return { reference: payload.dockerReference };
}

/**
 * sigstoreSigned: signatures attached to the image: cosign's "legacy" signatures in the
 * `sha256-<hex>.sig` tag (payload claims checked against signedIdentity), signed by a policy
 * key or keyless by a Fulcio certificate, with a Rekor SET wherever the policy names a Rekor
 * key; and cosign v3's sigstore bundles with policy keys (they name only the manifest digest).
 */
export async function verifySigstoreAttachments(requirement: Requirement & { type: 'sigstoreSigned' }, evidence: ImageEvidence): Promise<RequirementResult> {
  const result: RequirementResult = { type: 'sigstoreSigned', accepted: false, signatures: [], reasons: [] };
  if (requirement.pki) {
    result.reasons.push('the policy\'s "pki" signer (X.509 without Fulcio) is not verified by basalt; refusing rather than skipping it');
    return result;
  }
  if (!evidence.storage.useSigstoreAttachments) {
    result.reasons.push(`registries.d does not enable sigstore attachments (use-sigstore-attachments) for ${evidence.imageName}`);
    return result;
  }
  const keys = await loadKeys(requirement.keys);
  const rekorKeys = requirement.rekorKeys === undefined ? undefined : await loadKeys(requirement.rekorKeys);
  const fulcio = requirement.fulcio === undefined ? undefined : await (await import('./fulcio.js')).loadFulcioTrust(requirement.fulcio);
  const signatures = await evidence.cosignSignatures();
  if (signatures.length === 0) result.reasons.push(`no signatures (looked for ${evidence.identity.signatureImageName(evidence.manifestDigest)})`);
  for (const sig of signatures) {
    const what = `signature ${sig.digest}`;
    if (sig.signature.length === 0) {
      result.reasons.push(`${what} has no ${SIGNATURE_ANNOTATION} annotation`);
      continue;
    }
    const signerProblem = await signerMismatch(sig, keys, rekorKeys, fulcio);
    if (signerProblem !== undefined) {
      result.reasons.push(`${what} ${signerProblem}`);
      continue;
    }
    const claim = payloadMismatch(sig.payload, COSIGN_SIGNATURE_TYPE, evidence, requirement.signedIdentity, what);
    if ('reason' in claim) result.reasons.push(claim.reason);
    else result.signatures.push({ format: 'cosign', dockerReference: claim.reference, id: sig.digest });
  }
  // cosign v3 attaches sigstore bundles instead of the .sig image; looked up only when no
  // legacy signature was accepted (one accepted signature is enough, and it saves requests).
  if (result.signatures.length === 0 && fulcio === undefined && rekorKeys === undefined) {
    const bundles = await verifyBundleAttachments(evidence.imageName, evidence.manifestDigest, keys, evidence.transport);
    result.reasons.push(...bundles.reasons);
    for (const b of bundles.accepted) result.signatures.push({ format: 'sigstore-bundle', dockerReference: BUNDLE_REFERENCE, id: b.id });
  }
  result.accepted = result.signatures.length > 0;
  return result;
}

/** Whether the signature was made by a signer the requirement trusts; undefined when it was, else why not. */
async function signerMismatch(sig: CosignSignature, keys: KeyObject[], rekorKeys: KeyObject[] | undefined, fulcio: FulcioTrust | undefined): Promise<string | undefined> {
  let logged: RekorEntry | undefined;
  if (rekorKeys !== undefined) {
    const set = verifyRekorSet(sig.annotations[REKOR_BUNDLE_ANNOTATION], rekorKeys, sig.signature, sig.payload);
    if ('reason' in set) return set.reason;
    logged = set;
  }
  if (fulcio !== undefined) {
    if (logged === undefined) return 'cannot be checked: a fulcio policy needs a Rekor key'; // the policy parser already insists
    const cert = (await import('./fulcio.js')).verifyFulcioCertificate(sig.annotations[CERTIFICATE_ANNOTATION], sig.annotations[CHAIN_ANNOTATION], fulcio, logged);
    if ('reason' in cert) return cert.reason;
    return verifyBytes(sig.payload, sig.signature, cert.key) ? undefined : 'is not valid for its certificate\'s key (the payload was altered)';
  }
  const key = keys.find((k) => verifyBytes(sig.payload, sig.signature, k));
  if (!key) return 'is not valid for any trusted key (wrong key, or the payload was altered)';
  if (logged !== undefined && !loggedKeyIs(logged.signerPem, key)) return 'has a Rekor entry that logs another key';
  return undefined;
}

async function verifySignedBy(requirement: Requirement & { type: 'signedBy' }, evidence: ImageEvidence): Promise<RequirementResult> {
  const result: RequirementResult = { type: 'signedBy', accepted: false, signatures: [], reasons: [] };
  const blobs = await evidence.simpleSignatures();
  if (blobs.length === 0) result.reasons.push(`no simple signatures (lookaside: ${evidence.storage.lookaside ?? 'none configured in registries.d'})`);
  for (const [i, blob] of blobs.entries()) {
    const what = `simple signature ${i + 1}`;
    let verified;
    try {
      verified = await verifySimpleSignature(blob, requirement.keys.paths, requirement.keys.data);
    } catch (e) {
      if (!isBasaltError(e) || e.kind === 'unsupported') throw e;
      result.reasons.push(`${what}: ${e.message}`);
      continue;
    }
    const claim = payloadMismatch(verified.payload, SIMPLE_SIGNING_TYPE, evidence, requirement.signedIdentity, what);
    if ('reason' in claim) result.reasons.push(claim.reason);
    else result.signatures.push({ format: 'simple-signing', dockerReference: claim.reference, id: verified.signerFingerprint });
  }
  result.accepted = result.signatures.length > 0;
  return result;
}
