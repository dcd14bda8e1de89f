import { BasaltError } from '../oci/errors.js';
import { digestOf } from '../oci/digest.js';
import { serializeImage, type Image } from '../oci/image.js';
import type { ImageSource } from '../oci/transport.js';
import type { SourceCheck } from './import.js';

export interface UpdateCandidate {
  /** Where the image was read from (its signatures live beside it). */
  source: ImageSource;
  image: Image;
  /** The manifest digest the update will record and deploy. */
  manifestDigest: string;
  /** The image name as given (`docker://…`, `oci-archive:…`). */
  reference: string;
}

/**
 * The one gate every update path (upgrade, switch, upgrade --from, rollback excluded: it only
 * goes back to a deployment already on the device) passes before anything is written to the
 * sysroot: the manifest read must be the one that will be deployed, and the signature policy
 * must accept the image.
 */
export async function checkUpdateAllowed(candidate: UpdateCandidate, checkSource?: SourceCheck): Promise<void> {
  const manifest = serializeImage(candidate.image).manifest;
  // The bytes read must hash to the digest recorded (a sha512 digest is checked by its reader).
  if (manifest.digest.startsWith('sha256:') && digestOf(manifest.bytes) !== manifest.digest)
    throw new BasaltError('integrity', `${candidate.reference}: manifest bytes do not match their digest ${manifest.digest}`, { hint: 'the source is corrupt or was changed while reading; run the update again' });
  const actual = manifest.digest;
  if (actual !== candidate.manifestDigest)
    throw new BasaltError('integrity', `${candidate.reference}: the manifest read (${actual}) is not the one to deploy (${candidate.manifestDigest})`, { hint: 'run the update again' });
  // The signature policy (src/trust/enforce.ts checkImagePolicy, handed in by the CLI so that
  // deploy does not depend on trust) throws a 'policy' error on refusal.
  await checkSource?.(candidate.source, candidate.reference);
}
