import { createHash, createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import type { Bundle, TLogEntryWithInclusionProof, TransparencyLogEntry } from '@sigstore/bundle';
import { RFC3161Timestamp } from '@sigstore/core';
import type { TransparencyLogInstance, TrustedRoot } from '@sigstore/protobuf-specs';
// Not re-exported by the package index; the RFC 6962 inclusion check itself is log-version neutral.
import { verifyMerkleInclusion } from '@sigstore/verify/dist/timestamp/merkle.js';
import { BasaltError } from '../../oci/errors.js';

/**
 * Rekor v2 entries, which @sigstore/verify 2.x cannot check (it dates entries by their
 * integrated time, which v2 entries do not have, and requires every checkpoint signature
 * to come from a known log, which witness cosignatures do not). basalt checks them itself:
 * the entry's body records this bundle's signature and digest, the RFC 6962 inclusion proof
 * (the library's), and the checkpoint, a C2SP signed note, signed by the trusted log that
 * the entry names, under its own origin, while the log's key was valid. The caller lets the
 * library verify everything else with the RFC 3161 timestamps as the signing time.
 */

const SIGNATURE_LINE = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/;

function refuse(what: string, reason: string): BasaltError {
  return new BasaltError('policy', `${what}: ${reason}`, { hint: 'the transparency-log entry does not prove this signature was logged; do not use the artifact' });
}

/**
 * Whether an entry is a Rekor v2 one: hashedrekord or dsse 0.0.2 (Rekor v1 has intoto 0.0.2,
 * so the version alone does not tell).
 */
export function isRekorV2Entry(entry: TransparencyLogEntry): boolean {
  const kind = entry.kindVersion?.kind;
  return entry.kindVersion?.version === '0.0.2' && (kind === 'hashedrekord' || kind === 'dsse');
}

/** The times RFC 3161 timestamps in the bundle attest (the library verifies them separately). */
export function timestampTimes(bundle: Bundle): Date[] {
  return (bundle.verificationMaterial.timestampVerificationData?.rfc3161Timestamps ?? []).map((t) => RFC3161Timestamp.parse(t.signedTimestamp).signingTime);
}

/** What the log entry must record: the signature bytes, the signed digest, the certificate. */
function expectedContent(bundle: Bundle): { signature: Buffer; digest: Buffer; certificate: Buffer | undefined } {
  const material = bundle.verificationMaterial.content;
  const certificate =
    material.$case === 'certificate' ? material.certificate.rawBytes : material.$case === 'x509CertificateChain' ? material.x509CertificateChain.certificates[0]?.rawBytes : undefined;
  if (bundle.content.$case === 'messageSignature') {
    const { signature, messageDigest } = bundle.content.messageSignature;
    return { signature, digest: messageDigest?.digest ?? Buffer.alloc(0), certificate };
  }
  // Rekor v2 logs a DSSE envelope as a hashedrekord over its pre-authentication encoding.
  const env = bundle.content.dsseEnvelope;
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(env.payloadType)} ${env.payloadType} ${env.payload.length} `), env.payload]);
  return { signature: env.signatures[0]?.sig ?? Buffer.alloc(0), digest: createHash('sha256').update(pae).digest(), certificate };
}

function checkBody(entry: TransparencyLogEntry, bundle: Bundle, what: string): void {
  if (bundle.content.$case === 'dsseEnvelope' && bundle.content.dsseEnvelope.signatures.length !== 1)
    throw refuse(what, 'a DSSE envelope logged to Rekor v2 must carry exactly one signature');
  let body: { kind?: unknown; apiVersion?: unknown; spec?: { hashedRekordV002?: { data?: { algorithm?: unknown; digest?: unknown }; signature?: { content?: unknown; verifier?: { x509Certificate?: { rawBytes?: unknown } } } } } };
  try {
    body = JSON.parse(entry.canonicalizedBody.toString('utf8'));
  } catch {
    throw refuse(what, 'the transparency-log entry body is not JSON');
  }
  if (body.kind !== 'hashedrekord' || body.apiVersion !== '0.0.2' || entry.kindVersion?.kind !== 'hashedrekord')
    throw new BasaltError('unsupported', `${what}: Rekor v2 entry of kind ${String(body.kind)}/${String(body.apiVersion)}; basalt checks only hashedrekord 0.0.2`);
  const spec = body.spec?.hashedRekordV002;
  const want = expectedContent(bundle);
  if (spec?.data?.algorithm !== 'SHA2_256' || typeof spec.data.digest !== 'string' || !Buffer.from(spec.data.digest, 'base64').equals(want.digest))
    throw refuse(what, 'the transparency-log entry records another digest than the bundle signs');
  if (typeof spec.signature?.content !== 'string' || !Buffer.from(spec.signature.content, 'base64').equals(want.signature))
    throw refuse(what, 'the transparency-log entry records another signature than the bundle carries');
  const loggedCert = spec.signature.verifier?.x509Certificate?.rawBytes;
  if (want.certificate !== undefined && (typeof loggedCert !== 'string' || !Buffer.from(loggedCert, 'base64').equals(want.certificate)))
    throw refuse(what, 'the transparency-log entry records another certificate than the bundle carries');
}

function hostOf(baseUrl: string): string {
  try {
    return new URL(baseUrl).host;
  } catch {
    return baseUrl;
  }
}

function noteSignatureValid(key: KeyObject, note: Buffer, signature: Buffer): boolean {
  const type = key.asymmetricKeyType;
  const algorithm = type === 'ed25519' || type === 'ed448' ? null : type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256';
  try {
    return verifySignature(algorithm, note, key, signature);
  } catch {
    return false;
  }
}

/**
 * The checkpoint (C2SP signed note): `origin\nsize\nroot-hash\n[extensions\n]\n` then
 * signature lines `— name base64(key-hint ‖ signature)`. The log's own signature is the one
 * that counts: named as the log's origin, with the log id's first four bytes as key hint;
 * other lines (witness cosignatures, other keys) are neither required nor trusted.
 */
function checkCheckpoint(entry: TLogEntryWithInclusionProof, log: TransparencyLogInstance, what: string): void {
  const envelope = entry.inclusionProof.checkpoint?.envelope ?? '';
  const split = envelope.indexOf('\n\n');
  if (split < 0) throw refuse(what, 'the checkpoint has no signatures (no blank line after its body)');
  const note = envelope.slice(0, split + 1);
  const [origin, size, rootHash] = note.slice(0, -1).split('\n');
  const expectedOrigin = hostOf(log.baseUrl);
  if (origin !== expectedOrigin) throw refuse(what, `the checkpoint's origin ${JSON.stringify(origin)} is not the log ${expectedOrigin}`);
  if (size === undefined || !/^\d+$/.test(size) || size !== entry.inclusionProof.treeSize)
    throw refuse(what, `the checkpoint's tree size ${JSON.stringify(size)} is not the inclusion proof's ${entry.inclusionProof.treeSize}`);
  if (rootHash === undefined || !Buffer.from(rootHash, 'base64').equals(entry.inclusionProof.rootHash) || entry.inclusionProof.rootHash.length !== 32)
    throw refuse(what, 'the checkpoint\'s root hash is not the inclusion proof\'s');
  const key = createPublicKey({ key: log.publicKey?.rawBytes as Buffer, format: 'der', type: 'spki' });
  const hint = (log.logId?.keyId as Buffer).subarray(0, 4);
  const signedByLog = envelope
    .slice(split + 2)
    .split('\n')
    .some((line) => {
      const m = SIGNATURE_LINE.exec(line);
      if (m === null || m[1] !== expectedOrigin) return false;
      const bytes = Buffer.from(m[2] as string, 'base64');
      return bytes.length > 4 && bytes.subarray(0, 4).equals(hint) && noteSignatureValid(key, Buffer.from(note, 'utf8'), bytes.subarray(4));
    });
  if (!signedByLog) throw refuse(what, `the checkpoint carries no valid signature of ${expectedOrigin}`);
}

/**
 * Verifies one Rekor v2 entry of the bundle against the root's logs, for signing times
 * `times` (already verified RFC 3161 timestamps; v2 entries are dated by those alone).
 */
export function verifyRekorV2Entry(entry: TransparencyLogEntry, bundle: Bundle, root: TrustedRoot, times: Date[], what: string): void {
  if (entry.inclusionProof === undefined) throw refuse(what, 'a Rekor v2 entry must carry an inclusion proof');
  if (times.length === 0) throw refuse(what, 'a Rekor v2 entry has no integrated time, so the bundle needs an RFC 3161 timestamp, and it has none');
  const keyId = entry.logId?.keyId;
  const log = root.tlogs.find((t) => keyId !== undefined && t.logId?.keyId.equals(keyId));
  if (log === undefined) throw refuse(what, 'the entry comes from a transparency log the trust root does not list');
  const start = log.publicKey?.validFor?.start;
  const end = log.publicKey?.validFor?.end;
  for (const time of times)
    if ((start !== undefined && time < start) || (end !== undefined && time > end))
      throw refuse(what, `the log ${log.baseUrl} was not trusted at ${time.toISOString()} (the timestamp's time)`);
  checkBody(entry, bundle, what);
  try {
    verifyMerkleInclusion(entry as TLogEntryWithInclusionProof);
  } catch (e) {
    throw refuse(what, `the inclusion proof does not verify (${(e as Error).message})`);
  }
  checkCheckpoint(entry as TLogEntryWithInclusionProof, log, what);
}
