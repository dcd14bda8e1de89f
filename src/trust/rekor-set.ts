import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { verifyBytes } from './keys.js';

/**
 * cosign's `dev.sigstore.cosign/bundle` annotation: Rekor's signed entry timestamp (SET) over
 * a hashedrekord entry, which proves when the signature was logged. containers/image checks
 * it for keyless signatures (and for keyed ones when the policy names a Rekor key); the
 * checks here are the same: the SET is Rekor's signature over the canonical JSON of the
 * entry's body, time, log ID and index; the log ID is the hash of the key that signed it;
 * the body names this signature, this payload's hash and this signer.
 */
export interface RekorEntry {
  /** When Rekor logged the signature (seconds since the epoch). */
  integratedTime: number;
  /** The signer as logged: a PEM public key or certificate. */
  signerPem: Buffer;
}

interface SetAnnotation {
  SignedEntryTimestamp?: unknown;
  Payload?: { body?: unknown; integratedTime?: unknown; logIndex?: unknown; logID?: unknown };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The hex log ID Rekor derives from its public key: SHA-256 of the DER SubjectPublicKeyInfo. */
export function rekorLogId(key: KeyObject): string {
  return createHash('sha256').update(key.export({ format: 'der', type: 'spki' })).digest('hex');
}

/** Verifies the annotation for a signature over `payload`; returns the logged entry, or why it does not hold. */
export function verifyRekorSet(annotation: string | undefined, rekorKeys: readonly KeyObject[], signature: Buffer, payload: Buffer): RekorEntry | { reason: string } {
  if (annotation === undefined) return { reason: 'has no Rekor bundle (dev.sigstore.cosign/bundle), which the policy requires' };
  let set: SetAnnotation;
  try {
    set = JSON.parse(annotation) as SetAnnotation;
  } catch {
    return { reason: 'has a Rekor bundle that is not JSON' };
  }
  const p = set.Payload;
  const sigB64 = set.SignedEntryTimestamp;
  if (typeof sigB64 !== 'string' || !BASE64.test(sigB64) || !p || typeof p.body !== 'string' || !BASE64.test(p.body) ||
      !Number.isSafeInteger(p.integratedTime) || !Number.isSafeInteger(p.logIndex) || typeof p.logID !== 'string')
    return { reason: 'has a malformed Rekor bundle (SignedEntryTimestamp and Payload body, integratedTime, logIndex, logID are required)' };
  // Rekor signs the canonical JSON of the payload: keys sorted, no spaces.
  const canonical = Buffer.from(JSON.stringify({ body: p.body, integratedTime: p.integratedTime, logID: p.logID, logIndex: p.logIndex }));
  const signer = rekorKeys.find((k) => verifyBytes(canonical, Buffer.from(sigB64, 'base64'), k));
  if (!signer) return { reason: 'has a Rekor SET that no trusted Rekor key signed (or the entry was altered)' };
  if (rekorLogId(signer) !== p.logID) return { reason: `has a Rekor SET whose log ID ${p.logID} is not the trusted Rekor key's` };
  const body = hashedRekord(Buffer.from(p.body, 'base64'));
  if ('reason' in body) return body;
  if (!body.signature.equals(signature)) return { reason: 'has a Rekor entry for another signature' };
  if (body.sha256 !== createHash('sha256').update(payload).digest('hex')) return { reason: 'has a Rekor entry for another payload' };
  return { integratedTime: p.integratedTime as number, signerPem: body.signerPem };
}

function hashedRekord(raw: Buffer): { signature: Buffer; signerPem: Buffer; sha256: string } | { reason: string } {
  const bad = { reason: 'has a Rekor entry that is not a hashedrekord v0.0.1 entry with a sha256 hash' };
  let entry: { kind?: unknown; apiVersion?: unknown; spec?: { signature?: { content?: unknown; publicKey?: { content?: unknown } }; data?: { hash?: { algorithm?: unknown; value?: unknown } } } };
  try {
    entry = JSON.parse(raw.toString('utf8')) as typeof entry;
  } catch {
    return bad;
  }
  const sig = entry.spec?.signature;
  const hash = entry.spec?.data?.hash;
  if (entry.kind !== 'hashedrekord' || entry.apiVersion !== '0.0.1' || typeof sig?.content !== 'string' || typeof sig.publicKey?.content !== 'string' ||
      hash?.algorithm !== 'sha256' || typeof hash.value !== 'string' || !/^[0-9a-f]{64}$/.test(hash.value))
    return bad;
  return { signature: Buffer.from(sig.content, 'base64'), signerPem: Buffer.from(sig.publicKey.content, 'base64'), sha256: hash.value };
}

/** Whether the logged signer PEM is `key` (keyed signatures under a Rekor requirement). */
export function loggedKeyIs(signerPem: Buffer, key: KeyObject): boolean {
  try {
    const logged = createPublicKey(signerPem).export({ format: 'der', type: 'spki' });
    return logged.equals(key.export({ format: 'der', type: 'spki' }));
  } catch {
    return false;
  }
}
