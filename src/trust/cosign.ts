import { Readable } from 'node:stream';
import type { KeyObject } from 'node:crypto';
import { BasaltError, isBasaltError } from '../oci/errors.js';
import { digestOf } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import { encodeJson, parseManifest, type Descriptor, type ImageManifest } from '../oci/manifest.js';
import { readVerifiedBlob } from '../oci/blob.js';
import { openDestination, openSource } from '../oci/transports/index.js';
import type { ImageSource, TransportOptions } from '../oci/transport.js';
import { signBytes } from './keys.js';
import { imageIdentity } from './image-identity.js';

/**
 * cosign's "legacy" signature format, the one containers/image's `sigstoreSigned` reads: an
 * OCI image tagged `sha256-<hex>.sig` beside the signed image, each layer a simple-signing
 * payload blob whose base64 signature is in the layer's annotation.
 */
export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const CERTIFICATE_ANNOTATION = 'dev.sigstore.cosign/certificate';
export const CHAIN_ANNOTATION = 'dev.sigstore.cosign/chain';
export const REKOR_BUNDLE_ANNOTATION = 'dev.sigstore.cosign/bundle';
/** A signature payload larger than this is not a signature (containers/image uses 4 MiB too). */
const MAX_PAYLOAD_BYTES = 4 * 1024 * 1024;

export interface CosignSignature {
  payload: Buffer;
  /** The decoded signature bytes (empty when the annotation is missing). */
  signature: Buffer;
  /** Every layer annotation (certificate, chain, Rekor bundle) as stored. */
  annotations: Record<string, string>;
  /** The payload layer's digest, naming this signature in messages. */
  digest: string;
}

/**
 * Reads the signatures stored under `signatureImage` (an image name on the same transport as
 * the signed image). A missing signature image means no signatures; a signature image that is
 * there but corrupt (a payload failing its digest, a bad manifest) is an error, never skipped.
 */
export async function readCosignSignatures(signatureImage: string, options: TransportOptions): Promise<CosignSignature[]> {
  return withSignatureManifest(signatureImage, options, async (source, layers) => {
    const out: CosignSignature[] = [];
    for (const layer of layers) {
      if (layer.mediaType !== SIMPLE_SIGNING_MEDIA_TYPE) continue;
      const payload = await readVerifiedBlob(source, layer, MAX_PAYLOAD_BYTES);
      const annotations = layer.annotations ?? {};
      const b64 = annotations[SIGNATURE_ANNOTATION] ?? '';
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new BasaltError('invalid', `signature ${layer.digest} in ${signatureImage}: the signature annotation is not base64`, { hint: 'the signature is corrupt' });
      out.push({ payload, signature: Buffer.from(b64, 'base64'), annotations, digest: layer.digest });
    }
    return out;
  });
}

/**
 * Opens the signature image and hands its layers to `use`; a missing signature image gives
 * `use` nothing to do (no signatures), an index where a signature manifest belongs is an error.
 */
async function withSignatureManifest<T>(signatureImage: string, options: TransportOptions, use: (source: ImageSource, layers: Descriptor[]) => Promise<T>): Promise<T | []> {
  let source;
  try {
    source = await openSource(signatureImage, options);
  } catch (e) {
    if (isBasaltError(e, 'not-found')) return [];
    throw e;
  }
  try {
    const top = await source.getManifest();
    const parsed = parseManifest(top.bytes, top.mediaType, signatureImage);
    if (parsed.kind !== 'image') throw new BasaltError('invalid', `${signatureImage} is an index, not a cosign signature manifest`, { hint: 'remove it, then sign again' });
    return await use(source, parsed.manifest.layers);
  } finally {
    await source.close();
  }
}

export interface SignResult {
  /** Where the signature went. */
  signatureImage: string;
  /** Digest of the new signature manifest. */
  digest: string;
  /** Whether an identical signature was already there (nothing written). */
  alreadyPresent: boolean;
}

/**
 * Signs `payload` with `privateKey` and stores it under `signatureImage`, keeping every
 * signature already there (cosign appends). Written whole or not at all: the destination
 * publishes the new manifest only on commit.
 */
export async function pushCosignSignature(signatureImage: string, payload: Buffer, privateKey: KeyObject, options: TransportOptions): Promise<SignResult> {
  const signature: CosignSignature = { payload, signature: signBytes(payload, privateKey), annotations: {}, digest: digestOf(payload) };
  const { digest, added } = await appendCosignSignatures(signatureImage, [signature], options);
  return { signatureImage, digest, alreadyPresent: added === 0 };
}

/** The layer descriptor a signature is stored as. */
function signatureLayer(sig: CosignSignature): Descriptor {
  return {
    mediaType: SIMPLE_SIGNING_MEDIA_TYPE,
    digest: digestOf(sig.payload),
    size: sig.payload.length,
    annotations: { ...sig.annotations, [SIGNATURE_ANNOTATION]: sig.signature.toString('base64') },
  };
}

/**
 * Adds signatures to the signature image, keeping those already there; byte-identical
 * duplicates (same payload, same signature) are not added twice (ECDSA signatures differ
 * each time, so re-signing does add one). Returns the new manifest digest and how many were added.
 */
export async function appendCosignSignatures(signatureImage: string, signatures: readonly CosignSignature[], options: TransportOptions): Promise<{ digest: string; added: number }> {
  const existing = await existingLayers(signatureImage, options);
  const same = (a: Descriptor, b: Descriptor): boolean => a.digest === b.digest && a.annotations?.[SIGNATURE_ANNOTATION] === b.annotations?.[SIGNATURE_ANNOTATION];
  const fresh: { desc: Descriptor; payload: Buffer }[] = [];
  for (const sig of signatures) {
    const desc = signatureLayer(sig);
    if (![...existing, ...fresh.map((f) => f.desc)].some((l) => same(l, desc))) fresh.push({ desc, payload: sig.payload });
  }
  if (fresh.length === 0) return { digest: '', added: 0 };
  const layers = [...existing, ...fresh.map((f) => f.desc)];
  const configBytes = encodeJson({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } });
  const config: Descriptor = { mediaType: MediaType.OciConfig, digest: digestOf(configBytes), size: configBytes.length };
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers };
  const manifestBytes = encodeJson(manifest);
  const destination = await openDestination(signatureImage, options);
  try {
    for (const { desc, payload } of [...fresh, { desc: config, payload: configBytes }]) {
      if (await destination.hasBlob(desc)) continue;
      await destination.putBlob(Readable.from([payload]), { mediaType: desc.mediaType, digest: desc.digest, size: desc.size });
    }
    const digest = digestOf(manifestBytes);
    await destination.putManifest({ bytes: manifestBytes, mediaType: MediaType.OciManifest, digest }, { top: true });
    await destination.commit();
    return { digest, added: fresh.length };
  } catch (e) {
    await destination.abort().catch(() => undefined);
    throw e;
  }
}

async function existingLayers(signatureImage: string, options: TransportOptions): Promise<Descriptor[]> {
  return withSignatureManifest(signatureImage, options, async (_source, layers) => layers);
}

/**
 * The cosign signatures stored for `imageName` at `manifestDigest`; none for transports that
 * keep no signatures (archives, containers-storage).
 */
export async function signaturesOf(imageName: string, manifestDigest: string, location: { registry: string; repository: string } | undefined, options: TransportOptions): Promise<CosignSignature[]> {
  let signatureImage: string;
  try {
    signatureImage = imageIdentity(imageName, location).signatureImageName(manifestDigest);
  } catch (e) {
    if (isBasaltError(e, 'unsupported')) return [];
    throw e;
  }
  return readCosignSignatures(signatureImage, options);
}

/** Where signatures of `imageName` at `manifestDigest` go; an 'unsupported' error for transports without signatures. */
export function signatureImageFor(imageName: string, manifestDigest: string): string {
  return imageIdentity(imageName).signatureImageName(manifestDigest);
}
