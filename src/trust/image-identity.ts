import { resolve } from 'node:path';
import { BasaltError } from '../oci/errors.js';
import { parseDigest } from '../oci/digest.js';
import { formatReference, parseReference, withDefaultTag, type ImageReference } from '../oci/reference.js';
import { parseImageName } from '../oci/transports/index.js';
import { parseLayoutReference } from '../oci/transports/oci-layout.js';
import { parseStoreName } from '../oci/transports/store.js';

/**
 * What trust needs to know about an image name: which policy scopes apply to it (as
 * containers/image computes PolicyConfigurationIdentity and ...Namespaces), the docker
 * reference signatures are matched against, and where cosign attachments live.
 */
export interface ImageIdentity {
  /** The policy.json transport key: docker, oci, oci-archive, docker-archive, containers-storage, store. */
  transport: string;
  /** The registry-style reference (docker and basalt's store); undefined for layouts and archives. */
  dockerReference: ImageReference | undefined;
  /** The most specific policy scope. */
  policyIdentity: string;
  /** Less specific scopes, most specific first. */
  policyNamespaces: string[];
  /** The image name (same transport) of the `sha256-<hex>.sig` attachment for a manifest digest. */
  signatureImageName(manifestDigest: string): string;
}

/** `sha256-<hex>.sig`: cosign's tag for the signatures of a manifest. */
export function signatureTag(manifestDigest: string): string {
  const { algorithm, hex } = parseDigest(manifestDigest, 'manifest digest');
  return `${algorithm}-${hex}.sig`;
}

/** host/ns/repo, host/ns, host, then *.parent-domains: containers/image's docker namespaces. */
export function dockerNamespaces(ref: ImageReference): string[] {
  const out: string[] = [];
  let name = `${ref.registry}/${ref.repository}`;
  for (;;) {
    out.push(name);
    const slash = name.lastIndexOf('/');
    if (slash < 0) break;
    name = name.slice(0, slash);
  }
  const colon = name.indexOf(':');
  if (colon >= 0) name = name.slice(0, colon);
  for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.')) {
    name = name.slice(dot + 1);
    out.push(`*.${name}`);
  }
  return out;
}

/** A path and its parents, not including "/" (containers/image's oci namespaces). */
function pathNamespaces(dir: string): string[] {
  const out: string[] = [];
  let path = dir;
  while (path !== '/' && path.lastIndexOf('/') >= 0 && path !== '') {
    out.push(path);
    path = path.slice(0, path.lastIndexOf('/'));
  }
  return out;
}

/**
 * The identity of an image name. `location` (a registry source's actual registry and
 * repository, after mirrors) says where attachments are read from when given.
 */
export function imageIdentity(imageName: string, location?: { registry: string; repository: string }): ImageIdentity {
  const { transport, reference } = parseImageName(imageName);
  switch (transport.name) {
    case 'docker': {
      const ref = withDefaultTag(parseReference(reference));
      const where = location ?? { registry: ref.registry, repository: ref.repository };
      return {
        transport: 'docker',
        dockerReference: ref,
        policyIdentity: formatReference(ref),
        policyNamespaces: dockerNamespaces(ref),
        signatureImageName: (d) => `docker://${where.registry}/${where.repository}:${signatureTag(d)}`,
      };
    }
    case 'store': {
      const n = parseStoreName(reference);
      if (n.name === undefined) throw new BasaltError('usage', `store:${reference}: signatures need an image name, not a bare digest`);
      const ref = parseReference(n.name);
      return {
        transport: 'store',
        dockerReference: ref,
        policyIdentity: n.name,
        policyNamespaces: dockerNamespaces(ref),
        signatureImageName: (d) => `store:${ref.registry}/${ref.repository}:${signatureTag(d)}`,
      };
    }
    case 'oci':
    case 'oci-archive': {
      const { dir, ref } = parseLayoutReference(reference, transport.name);
      const abs = resolve(dir);
      return {
        transport: transport.name,
        dockerReference: undefined,
        policyIdentity: `${abs}:${ref ?? ''}`,
        policyNamespaces: pathNamespaces(abs),
        signatureImageName: (d) => {
          if (transport.name !== 'oci') throw new BasaltError('unsupported', `${imageName}: signatures are stored in OCI layouts, registries and the store, not in archives`);
          return `oci:${dir}:${signatureTag(d)}`;
        },
      };
    }
    case 'dir': {
      // containers/image's dir transport: the resolved path, then its parents. Its simple
      // signatures are files inside the directory (signature-N), not cosign attachments.
      const abs = resolve(reference);
      return {
        transport: 'dir',
        dockerReference: undefined,
        policyIdentity: abs,
        policyNamespaces: pathNamespaces(abs).slice(1),
        signatureImageName: () => {
          throw new BasaltError('unsupported', `${imageName}: a dir: image holds simple signatures (signature-N files), not cosign signatures`, { hint: 'copy the image to a registry, an oci: layout or the store to attach cosign signatures' });
        },
      };
    }
    default:
      return {
        transport: transport.name,
        dockerReference: undefined,
        policyIdentity: reference,
        policyNamespaces: [],
        signatureImageName: () => {
          throw new BasaltError('unsupported', `${imageName}: basalt keeps no signatures in ${transport.name}`, { hint: 'copy the image to a registry, an oci: layout or the store, and sign it there' });
        },
      };
  }
}
