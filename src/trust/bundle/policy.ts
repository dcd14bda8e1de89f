import { createPublicKey, type KeyObject } from 'node:crypto';
import type { TrustedRoot } from '@sigstore/protobuf-specs';
import type { Signer } from '@sigstore/verify';
import { BasaltError } from '../../oci/errors.js';
import { parseTrustedRoot, publicGoodTrustedRoot } from './trusted-root.js';

// Who a bundle must be signed by, and which trust root vouches for logs and CAs: the policy
// half of bundle verification.

/** Who must have signed a keyless (Fulcio certificate) bundle. Subject and issuer are both required. */
export interface CertificateIdentity {
  /** The certificate's subject alternative name exactly (an email, or a URI such as a CI workflow). */
  subject?: string;
  /** A JavaScript regular expression the whole subject must match (anchored, unlike cosign's). */
  subjectRegExp?: string;
  /** The OIDC issuer recorded in the certificate exactly (`https://token.actions.githubusercontent.com`). */
  issuer?: string;
  /** A JavaScript regular expression the whole issuer must match. */
  issuerRegExp?: string;
}

export interface BundleVerificationPolicy {
  /** PEM public keys (SPKI, as `cosign.pub`); a bundle signed by any one of them is accepted. */
  publicKeys?: Buffer[];
  /** For keyless bundles: the identity the Fulcio certificate must name. */
  identity?: CertificateIdentity;
  /**
   * A trusted_root.json (its bytes or its parsed JSON); default: the public-good root shipped
   * inside @sigstore/tuf.
   */
  trustedRoot?: Buffer | Record<string, unknown>;
  /**
   * Whether a transparency-log entry is required (default true). Only key-signed bundles may
   * go without one (cosign's `--tlog-upload=false`); then nothing dates the signature and a
   * revoked key cannot be told from a current one.
   */
  requireTransparencyLog?: boolean;
}

/** The signer verifyBundle reports. */
export type VerifiedSigner =
  | { kind: 'public-key'; /** index into policy.publicKeys */ keyIndex: number }
  | { kind: 'certificate'; subject: string; issuer: string };

function refuse(what: string, reason: string, hint: string): BasaltError {
  return new BasaltError('policy', `${what}: ${reason}`, { hint });
}

/** The trust root a policy names, checked; the public-good one when it names none. */
export function rootFrom(policy: BundleVerificationPolicy): TrustedRoot {
  const given = policy.trustedRoot;
  if (given === undefined) return publicGoodTrustedRoot();
  return parseTrustedRoot(given);
}

function matches(value: string | undefined, exact: string | undefined, pattern: string | undefined): boolean {
  if (value === undefined) return false;
  if (exact !== undefined && value !== exact) return false;
  if (pattern !== undefined && !new RegExp(`^(?:${pattern})$`, 'u').test(value)) return false;
  return true;
}

export function checkIdentity(signer: Signer, identity: CertificateIdentity, what: string): VerifiedSigner {
  const subject = signer.identity?.subjectAlternativeName;
  const issuer = signer.identity?.extensions?.issuer;
  const wantSubject = identity.subject ?? `/${identity.subjectRegExp}/`;
  const wantIssuer = identity.issuer ?? `/${identity.issuerRegExp}/`;
  if (!matches(subject, identity.subject, identity.subjectRegExp))
    throw refuse(what, `signed by ${JSON.stringify(subject)}, not ${wantSubject}`, 'the signature is valid but made by someone the policy does not trust');
  if (!matches(issuer, identity.issuer, identity.issuerRegExp))
    throw refuse(what, `certificate issued for ${JSON.stringify(issuer)} identities, not ${wantIssuer}`, 'the signature is valid but its identity comes from an OIDC issuer the policy does not trust');
  return { kind: 'certificate', subject: subject as string, issuer: issuer as string };
}

export function checkPolicyShape(policy: BundleVerificationPolicy): void {
  const id = policy.identity;
  if (id !== undefined) {
    if (id.subject === undefined && id.subjectRegExp === undefined) throw new BasaltError('usage', 'a keyless identity needs a subject or subjectRegExp');
    if (id.issuer === undefined && id.issuerRegExp === undefined) throw new BasaltError('usage', 'a keyless identity needs an issuer or issuerRegExp');
    for (const p of [id.subjectRegExp, id.issuerRegExp]) {
      if (p === undefined) continue;
      try {
        new RegExp(p, 'u');
      } catch (e) {
        throw new BasaltError('usage', `identity pattern ${JSON.stringify(p)} is not a valid regular expression: ${(e as Error).message}`);
      }
    }
  }
  if ((policy.publicKeys === undefined || policy.publicKeys.length === 0) && id === undefined)
    throw new BasaltError('usage', 'a bundle policy needs public keys or a keyless identity', { hint: 'pass the signer\'s public key or the expected certificate identity and issuer' });
}

export function loadKeys(pems: Buffer[]): KeyObject[] {
  return pems.map((pem, i) => {
    try {
      return createPublicKey(pem);
    } catch (e) {
      throw new BasaltError('usage', `public key ${i + 1} is not a PEM public key (${(e as Error).message})`, { hint: 'give the signer\'s cosign.pub' });
    }
  });
}
