import { resolve } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { BasaltError } from '../oci/errors.js';
import { digestOf } from '../oci/digest.js';
import { formatReference, parseReference } from '../oci/reference.js';
import { openSource } from '../oci/transports/index.js';
import type { TransportOptions } from '../oci/transport.js';
import { pushCosignSignature } from './cosign.js';
import { imageIdentity } from './image-identity.js';
import { writeLookasideSignature } from './lookaside.js';
import { COSIGN_SIGNATURE_TYPE, createPayload, SIMPLE_SIGNING_TYPE } from './payload.js';
import { createSimpleSignature, type PgpSigner } from './pgp.js';
import { signatureStorageFor, type RegistriesD } from './registries-d.js';

/** Signs the manifest an image name points at now, the way cosign / skopeo standalone-sign do. */
export type Signer = { kind: 'cosign'; privateKey: KeyObject } | { kind: 'gpg'; signer: PgpSigner };

export interface SignOptions {
  transport: TransportOptions;
  /** The docker reference the signature claims (default: the image's registry name). */
  identity?: string;
  /** Simple signatures: where to write them (file:// or a directory); default from registries.d. */
  lookaside?: string;
  registriesD?: RegistriesD;
  /** Written into the payload's optional.creator. */
  creator: string;
  /** Seconds since the epoch for optional.timestamp (SOURCE_DATE_EPOCH when set). */
  timestamp: number;
}

export interface SignedImage {
  image: string;
  manifestDigest: string;
  dockerReference: string;
  format: 'cosign' | 'simple-signing';
  /** The signature image (cosign) or file/URL (simple signing) written. */
  location: string;
}

/** A lookaside location given as a directory or URL. */
export function lookasideUrl(value: string): string {
  return /^(file|https?):\/\//.test(value) ? value : `file://${resolve(value)}`;
}

export async function signImage(imageName: string, signer: Signer, options: SignOptions): Promise<SignedImage> {
  const source = await openSource(imageName, options.transport);
  let manifestBytes: Buffer;
  let location: { registry: string; repository: string } | undefined;
  try {
    manifestBytes = (await source.getManifest()).bytes;
    location = source.location;
  } finally {
    await source.close();
  }
  const manifestDigest = digestOf(manifestBytes);
  const identity = imageIdentity(imageName, location);
  const dockerReference = options.identity ?? (identity.dockerReference ? formatReference(identity.dockerReference) : undefined);
  if (dockerReference === undefined)
    throw new BasaltError('usage', `${imageName} has no registry name for the signature to claim`, { hint: 'pass --identity HOST/REPO:TAG, the name the image will be pulled by' });
  const optional = { creator: options.creator, timestamp: options.timestamp };
  if (signer.kind === 'cosign') {
    const payload = createPayload(COSIGN_SIGNATURE_TYPE, dockerReference, manifestDigest, optional);
    const pushed = await pushCosignSignature(identity.signatureImageName(manifestDigest), payload, signer.privateKey, options.transport);
    return { image: imageName, manifestDigest, dockerReference, format: 'cosign', location: pushed.signatureImage };
  }
  const storage = options.registriesD ? signatureStorageFor(options.registriesD, identity) : undefined;
  const base = options.lookaside ? lookasideUrl(options.lookaside) : (storage?.lookasideStaging ?? storage?.lookaside);
  if (base === undefined) throw new BasaltError('usage', `no lookaside location for the simple signature of ${imageName}`, { hint: 'pass --lookaside DIR, or set lookaside-staging for the registry in registries.d' });
  const payload = createPayload(SIMPLE_SIGNING_TYPE, dockerReference, manifestDigest, optional);
  const signature = await createSimpleSignature(payload, signer.signer);
  // containers/image keys lookaside paths by the repository without its host.
  const repositoryPath = identity.dockerReference?.repository ?? parseReference(dockerReference).repository;
  const written = await writeLookasideSignature(base, repositoryPath, manifestDigest, signature);
  return { image: imageName, manifestDigest, dockerReference, format: 'simple-signing', location: written };
}
