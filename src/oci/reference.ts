import { BasaltError } from './errors.js';
import { parseDigest } from './digest.js';

/**
 * A registry image reference, `[HOST[:PORT]/]REPO[:TAG][@DIGEST]`, in the grammar of
 * distribution/reference. `registry` and `repository` are normalised the way podman does
 * for fully-qualified names; short names are resolved by registries.conf (see registry/).
 */
export interface ImageReference {
  registry: string; // e.g. "localhost:5000", "docker.io"
  repository: string; // e.g. "library/debian", "basalt/debian"
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$|^\[[0-9a-fA-F:.]+\](?::[0-9]+)?$/;

function looksLikeDomain(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[') || first !== first.toLowerCase();
}

/** Whether the reference names a registry host explicitly (a fully-qualified name). */
export function isFullyQualified(ref: string): boolean {
  const slash = ref.indexOf('/');
  return slash > 0 && looksLikeDomain(ref.slice(0, slash));
}

/**
 * Parses a reference. Without a host, `defaultRegistry` is used (docker.io, with `library/`
 * for one-component names), matching docker's normalisation; callers that resolve short
 * names through registries.conf check isFullyQualified first.
 */
export function parseReference(ref: string, defaultRegistry = 'docker.io'): ImageReference {
  const bad = (why: string): never => {
    throw new BasaltError('usage', `image reference "${ref}" is invalid: ${why}`, { hint: 'write it as HOST[:PORT]/REPO[:TAG|@DIGEST]' });
  };
  if (ref === '' || ref.length > 4096) bad('empty or too long');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      parseDigest(digest);
    } catch {
      bad(`"${digest}" is not a valid digest`);
    }
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`tag "${tag}" is not valid`);
  }
  let registry = defaultRegistry;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash > 0 && looksLikeDomain(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    repository = rest.slice(slash + 1);
    if (!DOMAIN.test(registry)) bad(`registry host "${registry}" is not valid`);
  }
  if (registry === 'index.docker.io') registry = 'docker.io';
  if (registry === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  if (repository === '' || !repository.split('/').every((c) => COMPONENT.test(c)))
    bad(`repository "${repository}" must be lower-case path components of [a-z0-9] separated by . _ __ or -`);
  const out: ImageReference = { registry, repository };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** The reference with the default tag `latest` when it has neither tag nor digest. */
export function withDefaultTag(r: ImageReference): ImageReference {
  return r.tag === undefined && r.digest === undefined ? { ...r, tag: 'latest' } : r;
}
