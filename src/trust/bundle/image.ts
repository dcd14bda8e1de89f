import { BasaltError, isBasaltError } from '../../oci/errors.js';
import type { ImageSource } from '../../oci/transport.js';
import { findImageBundles } from './referrers.js';
import { verifyBundle, type BundleVerificationPolicy, type VerifiedBundle } from './verify.js';

/** The in-toto predicate type of a cosign v3 image signature (`cosign sign`). */
export const COSIGN_SIGN_PREDICATE_TYPE = 'https://sigstore.dev/cosign/sign/v1';

export interface ImageBundleOptions {
  /**
   * The predicate type a bundle's statement must have (default: a cosign signature). An
   * attestation (SLSA provenance, SBOM) about the image, even by the right signer, is not a
   * signature of it, so other predicate types only count when asked for here.
   */
  predicateType?: string;
}

export interface VerifiedImageBundle extends VerifiedBundle {
  /** The referrer manifest that carried the bundle. */
  referrer: string;
  /** Annotations the signer put on the statement's subject (`cosign sign -a key=value`). */
  annotations: Record<string, unknown>;
}

/**
 * Verifies the sigstore bundles attached to an image manifest as cosign v3 attaches them
 * (`cosign sign`, default `--new-bundle-format`): an OCI referrer whose layer is a bundle
 * holding a DSSE envelope with an in-toto statement, subject = the manifest digest,
 * predicate type https://sigstore.dev/cosign/sign/v1. What is signed is the manifest digest
 * and nothing else: no repository, no tag (unlike the legacy simple-signing payload's
 * docker-reference), so a signature follows the image to any repository.
 *
 * Resolves with every bundle that verifies under the policy (at least one); rejects with
 * BasaltError('policy') when there is none or none verifies, listing why for each.
 */
export async function verifyImageBundles(
  source: ImageSource,
  manifestDigest: string,
  policy: BundleVerificationPolicy,
  options: ImageBundleOptions = {},
): Promise<VerifiedImageBundle[]> {
  const predicateType = options.predicateType ?? COSIGN_SIGN_PREDICATE_TYPE;
  const bundles = await findImageBundles(source, manifestDigest);
  if (bundles.length === 0)
    throw new BasaltError('policy', `${source.name}: no sigstore bundle is attached to ${manifestDigest}`, {
      hint: 'sign the image (cosign sign, or basalt sign) and push the signature, or check the image name',
    });
  const verified: VerifiedImageBundle[] = [];
  const failures: string[] = [];
  for (const { bytes, referrer } of bundles) {
    try {
      const result = await verifyBundle(bytes, { digest: manifestDigest }, policy, `sigstore bundle ${referrer}`);
      const statement = result.dsse?.statement;
      if (statement === undefined) throw new BasaltError('policy', `sigstore bundle ${referrer}: a message signature, not a signed statement naming the image`);
      if (statement.predicateType !== predicateType)
        throw new BasaltError('policy', `sigstore bundle ${referrer}: predicate type ${statement.predicateType}, not ${predicateType}`);
      const subject = statement.subject.find((s) => s.digest.sha256 !== undefined && `sha256:${s.digest.sha256.toLowerCase()}` === manifestDigest);
      const annotations = (subject as { annotations?: unknown } | undefined)?.annotations;
      verified.push({ ...result, referrer, annotations: typeof annotations === 'object' && annotations !== null ? (annotations as Record<string, unknown>) : {} });
    } catch (e) {
      // A policy that makes no sense or a broken trust root fails every bundle alike.
      if (!isBasaltError(e) || (e.kind !== 'policy' && e.kind !== 'unsupported')) throw e;
      failures.push(e.message);
    }
  }
  if (verified.length === 0)
    throw new BasaltError('policy', `${source.name}: none of the ${bundles.length} sigstore bundle(s) attached to ${manifestDigest} satisfies the policy: ${failures.join('; ')}`, {
      hint: 'the image is not signed by a signer the policy trusts, or its signatures were altered',
    });
  return verified;
}
