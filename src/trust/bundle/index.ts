/**
 * Sigstore bundle verification (cosign v3's default signature format), offline, with the
 * sigstore project's own JavaScript libraries. See docs/trust-bundles.md.
 */
export { verifyBundle, type BundleArtifact, type BundleVerificationPolicy, type CertificateIdentity, type VerifiedBundle, type VerifiedSigner } from './verify.js';
export { parseTrustedRoot, publicGoodTrustedRoot, trustedRootFromKeys, type ExplicitTrust, type SigstoreTrustedRoot } from './trusted-root.js';
export { IN_TOTO_PAYLOAD_TYPE, type InTotoStatement, type InTotoSubject } from './statement.js';
export { findImageBundles, referrersTag, type ImageBundle } from './referrers.js';
export { COSIGN_SIGN_PREDICATE_TYPE, verifyImageBundles, type ImageBundleOptions, type VerifiedImageBundle } from './image.js';
