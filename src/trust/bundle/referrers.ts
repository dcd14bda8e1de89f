import { BasaltError, isBasaltError } from '../../oci/errors.js';
import { readVerifiedBlob } from '../../oci/blob.js';
import { parseDigest } from '../../oci/digest.js';
import { MAX_MANIFEST_BYTES, parseManifest, type Descriptor, type ImageIndex } from '../../oci/manifest.js';
import { MediaType } from '../../oci/media-types.js';
import { abandon, discard, type HttpResponse } from '../../oci/registry/http.js';
import { repoPathOf } from '../../oci/registry/paths.js';
import { RegistrySource } from '../../oci/registry/transport.js';
import type { ImageSource } from '../../oci/transport.js';

/** Media types of a sigstore bundle (artifactType of the referrer and its layer). */
const BUNDLE_TYPE = /^application\/vnd\.dev\.sigstore\.bundle(\.v0\.\d+)?\+json(;version=[\d.]+)?$/;
/** A bundle is a few kilobytes; anything this large is not one. */
const MAX_BUNDLE_BYTES = 1024 * 1024;
/** Referrers read at most (an index is attacker-controlled input). */
const MAX_REFERRERS = 256;

/** A sigstore bundle attached to an image as an OCI referrer. */
export interface ImageBundle {
  /** The bundle's JSON bytes (verified against its descriptor's digest and size). */
  bytes: Buffer;
  /** The digest of the referrer manifest that carries it. */
  referrer: string;
}

/** `sha256:abc…` → `sha256-abc…`: the tag the referrers tag schema uses. */
export function referrersTag(digest: string): string {
  const { algorithm, hex } = parseDigest(digest, 'manifest digest');
  return `${algorithm}-${hex}`;
}

/** A response body of at most MAX_MANIFEST_BYTES (a referrers index is a manifest). */
async function readBounded(res: HttpResponse, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_MANIFEST_BYTES) {
      abandon(res.body);
      throw new BasaltError('invalid', `${what}: more than ${MAX_MANIFEST_BYTES} bytes`, { hint: 'the registry served something that is not a referrers index' });
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

/**
 * The referrers of a manifest: the OCI 1.1 referrers API, or, where the registry has none
 * (it answers 404, as Distribution 2.8 does), the index under the `sha256-<hex>` tag.
 * Neither is authenticated; each referrer is checked when it is read.
 */
async function listReferrers(source: RegistrySource, digest: string): Promise<Descriptor[]> {
  const { client, reference } = source;
  const repository = reference.repository;
  const what = `referrers of ${digest}`;
  const { res, attempts } = await client.request({
    method: 'GET',
    path: `${repoPathOf(repository)}/referrers/${digest}`,
    headers: { accept: MediaType.OciIndex },
    scopes: [{ repository, actions: ['pull'] }],
    repository,
    what,
  });
  let index: ImageIndex;
  if (res.statusCode === 200) {
    const bytes = await readBounded(res, `${what} at ${source.name}`);
    const parsed = parseManifest(bytes, MediaType.OciIndex, `${what} at ${source.name}`);
    if (parsed.kind !== 'index') throw new BasaltError('invalid', `${what} at ${source.name}: the referrers API answered with an image manifest, not an index`);
    index = parsed.manifest;
  } else if (res.statusCode === 404) {
    await discard(res);
    try {
      const tagged = await client.getManifest(repository, referrersTag(digest));
      const parsed = parseManifest(tagged.bytes, tagged.mediaType, `referrers tag ${referrersTag(digest)} of ${source.name}`);
      if (parsed.kind !== 'index') return [];
      index = parsed.manifest;
    } catch (e) {
      if (isBasaltError(e, 'not-found')) return [];
      throw e;
    }
  } else {
    return client.failWith(res, attempts, what, repository);
  }
  return index.manifests.slice(0, MAX_REFERRERS);
}

/** The bundles one referrer manifest carries, if it is a bundle referrer of `subject`. */
async function readReferrer(source: RegistrySource, desc: Descriptor, subject: string): Promise<ImageBundle[]> {
  const blob = await source.getManifest(desc.digest);
  const parsed = parseManifest(blob.bytes, blob.mediaType, `referrer ${desc.digest} of ${source.name}`);
  if (parsed.kind !== 'image') return [];
  const manifest = parsed.manifest;
  const artifactType = manifest.artifactType ?? manifest.config.mediaType;
  if (!BUNDLE_TYPE.test(artifactType) || manifest.subject?.digest !== subject) return [];
  const bundles: ImageBundle[] = [];
  for (const layer of manifest.layers)
    if (BUNDLE_TYPE.test(layer.mediaType)) bundles.push({ bytes: await readVerifiedBlob(source, layer, MAX_BUNDLE_BYTES), referrer: desc.digest });
  return bundles;
}

/**
 * The sigstore bundles attached to an image manifest (cosign v3 `sign`, `attest`), in
 * referrer order. Each referrer manifest is fetched by digest (so it is what the index
 * named), must name `manifestDigest` as its subject and have a bundle artifact type; its
 * bundle layers are read and checked against their digests; referrers that are missing or
 * broken are skipped. Nothing here says a bundle is valid: that is verifyBundle's job.
 *
 * Only registry sources have referrers; other transports are refused as 'unsupported'.
 */
export async function findImageBundles(source: ImageSource, manifestDigest: string): Promise<ImageBundle[]> {
  parseDigest(manifestDigest, 'manifest digest');
  if (!(source instanceof RegistrySource))
    throw new BasaltError('unsupported', `${source.name}: sigstore bundles are found through registry referrers, and this is not a registry image`, {
      hint: 'verify the image in its registry (docker://...) before copying it elsewhere',
    });
  const found: ImageBundle[] = [];
  for (const desc of await listReferrers(source, manifestDigest)) {
    // The index may say what each referrer is; skip those it says are something else.
    if (desc.artifactType !== undefined && !BUNDLE_TYPE.test(desc.artifactType)) continue;
    if (desc.mediaType !== MediaType.OciManifest) continue;
    try {
      found.push(...(await readReferrer(source, desc, manifestDigest)));
    } catch (e) {
      // A referrer that is missing, malformed or corrupt carries no usable signature; it must
      // not hide the others (anyone who can push a tag can add one). Network and
      // authorization failures are not about the referrer, so they end the lookup.
      if (isBasaltError(e, 'not-found') || isBasaltError(e, 'invalid') || isBasaltError(e, 'integrity')) continue;
      throw e;
    }
  }
  return found;
}
