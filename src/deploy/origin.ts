import { parseImageName } from '../oci/transports/index.js';

/**
 * The image a deployment came from and updates from, kept in ostree's origin file (a GLib key
 * file beside the deployment). Written the way bootc writes it, so bootc-aware tools read it:
 *   [origin]
 *   container-image-reference=ostree-unverified-registry:HOST/REPO:TAG
 * plus ostree's `refspec` (the merged commit's ref, which `ostree admin status` shows) and a
 * [basalt] group with basalt's own transport-qualified name.
 */
export interface ImageSpec {
  /** The reference without transport: `registry.example/app:1`, `/path/layout:tag`. */
  image: string;
  /** bootc's transport names: registry, oci, oci-archive, containers-storage, docker-archive, store. */
  transport: string;
}

/** A basalt image name (`docker://…`, `oci:…`, bare store names) as bootc's {image, transport}. */
export function imageSpecOf(name: string): ImageSpec {
  const { transport, reference } = parseImageName(name);
  return { image: reference, transport: transport.name === 'docker' ? 'registry' : transport.name };
}

/** {image, transport} back to a name basalt's transports open. */
export function imageNameOf(spec: ImageSpec): string {
  return spec.transport === 'registry' ? `docker://${spec.image}` : `${spec.transport}:${spec.image}`;
}

/** ostree-rs-ext's container-image-reference form. */
function containerImageReference(spec: ImageSpec): string {
  return spec.transport === 'registry' ? `ostree-unverified-registry:${spec.image}` : `ostree-unverified-image:${spec.transport}:${spec.image}`;
}

export function formatOrigin(target: ImageSpec, refspec: string): string {
  return ['[origin]', `refspec=${refspec}`, `container-image-reference=${containerImageReference(target)}`, '', '[basalt]', `image=${target.image}`, `transport=${target.transport}`, ''].join('\n');
}

export type KeyFile = Map<string, Map<string, string>>;

export function parseKeyFile(text: string): KeyFile {
  const groups: KeyFile = new Map();
  let current: Map<string, string> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const g = /^\[(.+)\]$/.exec(line);
    if (g) {
      current = new Map();
      groups.set(g[1] as string, current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      current.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
    }
  }
  return groups;
}

/** The image an origin file names: basalt's group first, else bootc's reference. */
export function originImage(origin: KeyFile): ImageSpec | undefined {
  const b = origin.get('basalt');
  const basaltImage = b?.get('image');
  const basaltTransport = b?.get('transport');
  if (basaltImage && basaltTransport) return { image: basaltImage, transport: basaltTransport };
  const ref = origin.get('origin')?.get('container-image-reference');
  if (!ref) return undefined;
  const m = /^ostree-(?:unverified|remote|image-signed)[^:]*:(.*)$/.exec(ref);
  const rest = m?.[1] ?? ref;
  if (ref.includes('-registry:')) return { image: rest, transport: 'registry' };
  const colon = rest.indexOf(':');
  const named = colon > 0 ? rest.slice(0, colon) : 'registry';
  return { image: colon > 0 ? rest.slice(colon + 1) : rest, transport: named === 'docker' ? 'registry' : named };
}
