/**
 * `store:NAME` and bare names — basalt's local image store, an OCI layout whose index.json
 * entries carry the full normalised image name (`localhost/app:latest`,
 * `docker.io/library/debian:12`) as their ref.name annotation, so `oci:ROOT:NAME` and skopeo
 * read the same images.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BasaltError } from '../errors.js';
import { isDigest } from '../digest.js';
import { formatReference, isFullyQualified, parseReference, withDefaultTag } from '../reference.js';
import type { Descriptor } from '../manifest.js';
import type { ImageDestination, ImageSource, Transport, TransportOptions } from '../transport.js';
import { DirectoryFiles, LayoutSource, OciLayoutDestination, listLayoutRefs, readLayoutIndex, removeLayoutRef, REF_NAME_ANNOTATION } from './oci-layout.js';

/** Where the store lives: $BASALT_STORE, else /var/lib/basalt/store for root, else under XDG_DATA_HOME. */
export function defaultStoreRoot(env: NodeJS.ProcessEnv = process.env, uid: number | undefined = process.getuid?.()): string {
  if (env.BASALT_STORE) return env.BASALT_STORE;
  if (uid === 0) return '/var/lib/basalt/store';
  const dataHome = env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share');
  return join(dataHome, 'basalt', 'store');
}

export function storeRootFor(options: TransportOptions): string {
  return options.storeRoot ?? defaultStoreRoot();
}

export interface StoreName {
  /** `registry/repository:tag`, the ref.name the store uses. Undefined for a digest-only lookup. */
  name: string | undefined;
  /** `registry/repository`; '' for a bare digest. */
  repository: string;
  /** The last path components as written (`debian`, `team/app`), for short-name matching. */
  shortRepository: string;
  tag: string | undefined;
  /** Set when the user named the image by digest (`NAME@sha256:…` or a bare `sha256:…`). */
  digest: string | undefined;
  /** Whether the user wrote a registry host (short names may match other registries' images). */
  qualified: boolean;
}

/**
 * Normalises a local image name as podman does for local images: no registry means
 * `localhost/`, no tag means `:latest`.
 */
export function parseStoreName(input: string): StoreName {
  if (isDigest(input)) return { name: undefined, repository: '', shortRepository: '', tag: undefined, digest: input, qualified: false };
  const r = parseReference(input, 'localhost');
  const repository = `${r.registry}/${r.repository}`;
  const tag = r.tag ?? (r.digest === undefined ? 'latest' : undefined);
  return {
    name: tag === undefined ? undefined : formatReference(withDefaultTag({ registry: r.registry, repository: r.repository, tag })),
    repository,
    shortRepository: r.repository,
    tag,
    digest: r.digest,
    qualified: isFullyQualified(input),
  };
}

/** The name a store entry is written under; digests cannot name a destination. */
export function normaliseStoreName(input: string): string {
  const n = parseStoreName(input);
  if (n.digest !== undefined || n.name === undefined)
    throw new BasaltError('usage', `store:${input}: an image in the store is named by NAME[:TAG], not by digest`, { hint: 'give the image a name, e.g. localhost/app:1' });
  return n.name;
}

export interface StoreImage {
  name: string;
  digest: string;
  mediaType: string;
  size: number;
}

/** Named images in the store, in index order; [] when the store does not exist yet. */
export async function listStoreImages(root: string): Promise<StoreImage[]> {
  return (await listLayoutRefs(root)).map(({ ref, descriptor }) => ({ name: ref, digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size }));
}

/** Removes a name from the store (blobs are left for gcLayout). Returns the removed entry. */
export async function removeStoreImage(root: string, name: string): Promise<Descriptor> {
  return removeLayoutRef(root, normaliseStoreName(name));
}

function describeAvailable(images: Descriptor[]): string {
  const names = images.map((d) => d.annotations?.[REF_NAME_ANNOTATION]).filter((n): n is string => n !== undefined);
  return names.length ? `the store has: ${names.join(', ')}` : 'the store is empty; pull or build an image first';
}

/**
 * Finds the entry a user's name means: the exact normalised name; a digest (with the name's
 * repository if one was given); or, for a short name with no exact match, the only image whose
 * repository ends in that name (podman finds `docker.io/library/debian` as `debian` too).
 */
function findEntry(entries: Descriptor[], input: string, root: string): Descriptor {
  const n = parseStoreName(input);
  const named = (d: Descriptor): string | undefined => d.annotations?.[REF_NAME_ANNOTATION];
  const notFound = (): BasaltError => new BasaltError('not-found', `no image "${input}" in the store at ${root}`, { hint: describeAvailable(entries) });
  if (n.digest !== undefined) {
    // NAME@DIGEST: that digest under that repository (any tag); a bare digest: any entry.
    const pick = entries.find((d) => d.digest === n.digest && (n.repository === '' || (named(d) ?? '').startsWith(`${n.repository}:`)));
    if (!pick) throw notFound();
    return pick;
  }
  const exact = entries.find((d) => named(d) === n.name);
  if (exact) return exact;
  if (!n.qualified) {
    const suffix = `/${n.shortRepository}:${n.tag}`;
    const candidates = entries.filter((d) => {
      const name = named(d);
      return name !== undefined && (name.endsWith(suffix) || name.endsWith(`/library${suffix}`));
    });
    const only = candidates[0];
    if (candidates.length === 1 && only) return only;
    if (candidates.length > 1)
      throw new BasaltError('usage', `"${input}" is ambiguous in the store at ${root}`, { hint: `name one of: ${candidates.map((d) => named(d)).join(', ')}` });
  }
  throw notFound();
}

export const storeTransport: Transport = {
  name: 'store',
  async openSource(reference: string, options: TransportOptions): Promise<ImageSource> {
    const root = storeRootFor(options);
    const files = new DirectoryFiles(root);
    let entries: Descriptor[];
    try {
      entries = (await readLayoutIndex(files)).manifests;
    } catch (e) {
      if (e instanceof BasaltError && e.kind === 'not-found')
        throw new BasaltError('not-found', `no image "${reference}": the store at ${root} is empty`, { hint: 'pull or build an image first', cause: e });
      throw e;
    }
    const top = findEntry(entries, reference, root);
    const name = top.annotations?.[REF_NAME_ANNOTATION] ?? top.digest;
    return new LayoutSource(`store:${name}`, files, top);
  },
  async openDestination(reference: string, options: TransportOptions): Promise<ImageDestination> {
    const name = normaliseStoreName(reference);
    return new OciLayoutDestination(`store:${name}`, storeRootFor(options), name);
  },
};
