import { BasaltError } from '../errors.js';
import type { ImageDestination, ImageSource, Transport, TransportOptions } from '../transport.js';
import { dockerTransport } from '../registry/transport.js';
import { ociLayoutTransport } from './oci-layout.js';
import { ociArchiveTransport } from './oci-archive.js';
import { dockerArchiveTransport } from './docker-archive.js';
import { containersStorageTransport } from './containers-storage.js';
import { storeTransport } from './store.js';
import { dirTransport } from './dir.js';

/** Every transport, by the prefix skopeo uses (`docker://` is written with its slashes). */
export const TRANSPORTS: readonly Transport[] = [
  dockerTransport,
  ociLayoutTransport,
  ociArchiveTransport,
  dockerArchiveTransport,
  containersStorageTransport,
  storeTransport,
  dirTransport,
];

export interface ImageName {
  transport: Transport;
  /** The part after `transport:` (for docker, after `docker://`). */
  reference: string;
}

/**
 * Splits `transport:reference`. A name without a known transport prefix names an image in
 * basalt's local store (`store:`), the way podman's bare names name local images.
 */
export function parseImageName(name: string): ImageName {
  if (name.startsWith('docker://')) return { transport: dockerTransport, reference: name.slice('docker://'.length) };
  const colon = name.indexOf(':');
  if (colon > 0) {
    const prefix = name.slice(0, colon);
    const t = TRANSPORTS.find((x) => x.name === prefix && x !== dockerTransport);
    if (t) return { transport: t, reference: name.slice(colon + 1) };
    if (prefix === 'docker') throw new BasaltError('usage', `image name "${name}": the docker transport is written docker://HOST/REPO[:TAG]`);
    if (/^[a-z-]+$/.test(prefix) && !name.slice(colon + 1).match(/^\d/) && ['docker-daemon', 'sif', 'tarball', 'ostree'].includes(prefix))
      throw new BasaltError('unsupported', `image name "${name}": transport "${prefix}" is not supported`, { hint: `basalt reads ${TRANSPORTS.map((t) => (t.name === 'docker' ? 'docker://' : `${t.name}:`)).join(' ')}` });
  }
  return { transport: storeTransport, reference: name };
}

export async function openSource(name: string, options: TransportOptions = {}): Promise<ImageSource> {
  const { transport, reference } = parseImageName(name);
  return transport.openSource(reference, options);
}

export async function openDestination(name: string, options: TransportOptions = {}): Promise<ImageDestination> {
  const { transport, reference } = parseImageName(name);
  return transport.openDestination(reference, options);
}
