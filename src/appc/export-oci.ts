import { PassThrough } from 'node:stream';
import { BasaltError } from '../oci/errors.js';
import { writeImage, type Image } from '../oci/image.js';
import { MediaType } from '../oci/media-types.js';
import type { ContainerConfig, ImageConfig } from '../oci/manifest.js';
import { Scratch } from '../oci/scratch.js';
import { openDestination } from '../oci/transports/index.js';
import type { TransportOptions } from '../oci/transport.js';
import { TarWriter } from '../oci/layer/tar.js';
import { readAci } from './archive.js';
import { ociPlatform } from './identifiers.js';
import { labelOf, type ImageManifest } from './manifest.js';

/** The OCI image config an ACI's manifest maps to (exec → Entrypoint, ports, volumes, env). */
export function ociConfigFor(m: ImageManifest, created: string | undefined): ImageConfig {
  const os = labelOf(m, 'os') ?? 'linux';
  const arch = labelOf(m, 'arch') ?? 'amd64';
  const platform = ociPlatform(os, arch);
  if (!platform) throw new BasaltError('unsupported', `ACI ${m.name} is for ${os}/${arch}, which has no OCI platform basalt knows`);
  const config: ContainerConfig = {};
  const app = m.app;
  const labels: Record<string, string> = { 'org.opencontainers.image.title': m.name };
  for (const l of m.labels ?? []) labels[`appc.io/label/${l.name}`] = l.value;
  for (const a of m.annotations ?? []) labels[`appc.io/annotation/${a.name}`] = a.value;
  if (app) {
    if (app.exec && app.exec.length > 0) config.Entrypoint = app.exec;
    config.User = `${app.user}:${app.group}`;
    if (app.environment?.length) config.Env = app.environment.map((e) => `${e.name}=${e.value}`);
    if (app.workingDirectory) config.WorkingDir = app.workingDirectory;
    if (app.ports?.length) config.ExposedPorts = Object.fromEntries(app.ports.flatMap((p) => Array.from({ length: p.count ?? 1 }, (_x, i) => [`${p.port + i}/${p.protocol || 'tcp'}`, {}])));
    if (app.mountPoints?.length) config.Volumes = Object.fromEntries(app.mountPoints.map((mp) => [mp.path, {}]));
    Object.assign(labels, app.userLabels ?? {});
  }
  config.Labels = labels;
  const image: ImageConfig = { architecture: platform.architecture, os: platform.os, config, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
  if (platform.variant) image.variant = platform.variant;
  if (created) image.created = created;
  return image;
}

/**
 * Converts an ACI into a one-layer OCI image written to any basalt transport (`oci:DIR:TAG`,
 * `docker-archive:FILE:NAME`, `containers-storage:NAME`, the local store...). The layer is
 * the ACI's rootfs; hardlinks are re-rooted. ACIs with dependencies must be squashed first.
 */
export async function exportAciToOci(aciPath: string, destination: string, options: { transport?: TransportOptions; sourceDateEpoch?: number } = {}): Promise<{ digest: string; imageId: string; name: string }> {
  const scratch = await Scratch.create();
  try {
    const tarStream = new PassThrough();
    const writer = new TarWriter(tarStream);
    const layerPromise = scratch.writeLayer(tarStream, 'gzip');
    let info;
    try {
      info = await readAci(aciPath, {
        mode: 'strict',
        onRootfsEntry: async (entry, relative) => {
          const header = { ...entry, path: relative };
          if (entry.type === 'hardlink' && entry.linkname) header.linkname = entry.linkname.replace(/^(\.\/)?\/?rootfs\//, '');
          if (options.sourceDateEpoch !== undefined && header.mtime > options.sourceDateEpoch) header.mtime = options.sourceDateEpoch;
          await writer.add(header, entry.body);
        },
      });
      await writer.finish();
    } catch (e) {
      tarStream.destroy(e as Error);
      await layerPromise.catch(() => undefined);
      throw e;
    }
    const layer = await layerPromise;
    if (info.manifest.dependencies?.length)
      throw new BasaltError('unsupported', `${aciPath} depends on ${info.manifest.dependencies.map((d) => d.imageName).join(', ')}; basalt exports only self-contained ACIs`, {
        hint: 'convert the source with basalt aci from-docker (squashed, the default) or render the dependencies into one ACI first',
      });
    const created = options.sourceDateEpoch !== undefined ? new Date(options.sourceDateEpoch * 1000).toISOString().replace('.000Z', 'Z') : info.manifest.annotations?.find((a) => a.name === 'created')?.value;
    const config = ociConfigFor(info.manifest, created);
    config.rootfs.diff_ids = [layer.diffId];
    config.history = [{ ...(created ? { created } : {}), created_by: `basalt aci export ${info.manifest.name} (${info.imageId.slice(0, 19)})` }];
    const image: Image = { manifestType: MediaType.OciManifest, config, layers: [layer] };
    const dest = await openDestination(destination, options.transport ?? {});
    const written = await writeImage(image, dest);
    return { digest: written.digest, imageId: info.imageId, name: info.manifest.name };
  } finally {
    await scratch.dispose();
  }
}
