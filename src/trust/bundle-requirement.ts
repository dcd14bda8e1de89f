import type { KeyObject } from 'node:crypto';
import { isBasaltError } from '../oci/errors.js';
import { openSource } from '../oci/transports/index.js';
import type { TransportOptions } from '../oci/transport.js';

/** What a sigstore bundle signature is accepted as; a bundle names no repository. */
export const BUNDLE_REFERENCE = '(none: a sigstore bundle signs the manifest digest only)';

export interface BundleOutcome {
  accepted: { id: string }[];
  reasons: string[];
}

/**
 * cosign v3's signatures: sigstore bundles attached as OCI referrers (or under the referrers
 * tag). Keyed verification, as `sigstoreSigned` with keyPath/keyData asks: the key must have
 * signed an in-toto statement naming this manifest digest. The statement names no image, so
 * the policy's signedIdentity cannot be applied to it (docs/trust.md says so).
 */
export async function verifyBundleAttachments(imageName: string, manifestDigest: string, keys: readonly KeyObject[], transport: TransportOptions): Promise<BundleOutcome> {
  if (!imageName.startsWith('docker://')) return { accepted: [], reasons: [] };
  const publicKeys = keys.map((k) => Buffer.from(k.export({ type: 'spki', format: 'pem' }) as string));
  const source = await openSource(imageName, transport);
  try {
    const verified = await (await import('./bundle/index.js')).verifyImageBundles(source, manifestDigest, { publicKeys, requireTransparencyLog: false });
    return { accepted: verified.map((v) => ({ id: v.referrer })), reasons: [] };
  } catch (e) {
    if (isBasaltError(e, 'policy')) return { accepted: [], reasons: [e.message] };
    throw e;
  } finally {
    await source.close();
  }
}
