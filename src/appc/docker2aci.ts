import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { BasaltError } from '../oci/errors.js';
import { writeStreamAtomic } from '../oci/fsutil.js';
import { readImage, type Image } from '../oci/image.js';
import { DEFAULT_GZIP_LEVEL, autoDecompress } from '../oci/layer/compression.js';
import { exportFlattened } from '../oci/layer/export.js';
import { readTar, TarWriter, type TarHeader } from '../oci/layer/tar.js';
import { classifyWhiteout, entryComponents } from '../oci/layer/whiteout.js';
import { parseReference } from '../oci/reference.js';
import { openSource, parseImageName } from '../oci/transports/index.js';
import type { TransportOptions } from '../oci/transport.js';
import { readAci } from './archive.js';
import { appcOsArch, sanitizeAcIdentifier, sanitizeAcName } from './identifiers.js';
import { AC_VERSION, serializeManifest, type AciApp, type ImageManifest, type NameValue } from './manifest.js';

/** docker2aci's view of a Docker name: index (registry) URL, image (repository) name, tag. */
export interface DockerName {
  indexUrl: string;
  imageName: string;
  tag: string;
  original: string;
}

export function parseDockerName(ref: string): DockerName {
  const r = parseReference(ref);
  return { indexUrl: r.registry === 'docker.io' ? 'registry-1.docker.io' : r.registry, imageName: r.repository, tag: r.tag ?? 'latest', original: ref };
}

/** The Docker name a source stands for: its reference, or the first RepoTag of a docker archive. */
async function dockerNameOf(source: string, image: Image): Promise<string> {
  const { transport, reference } = parseImageName(source);
  if (transport.name === 'docker') return reference;
  if (transport.name === 'docker-archive') {
    const colon = reference.indexOf(':');
    if (colon >= 0 && !reference.slice(colon + 1).startsWith('@')) return reference.slice(colon + 1);
    const tags = await repoTags(colon >= 0 ? reference.slice(0, colon) : reference);
    if (tags[0]) return tags[0];
  }
  if (transport.name === 'containers-storage' || transport.name === 'store') return reference;
  const title = image.config.config?.Labels?.['org.opencontainers.image.ref.name'];
  const colon = reference.lastIndexOf(':');
  const tag = colon > 0 ? reference.slice(colon + 1) : title ?? 'latest';
  const base = basename(colon > 0 ? reference.slice(0, colon) : reference).toLowerCase().replace(/[^a-z0-9._-]/g, '-') || 'image';
  return `localhost/${base}:${/^[\w][\w.-]{0,127}$/.test(tag) ? tag : 'latest'}`;
}

async function repoTags(file: string): Promise<string[]> {
  for await (const entry of readTar(createReadStream(file), file)) {
    if (entry.path !== 'manifest.json') continue;
    const chunks: Buffer[] = [];
    for await (const c of entry.body) chunks.push(c as Buffer);
    const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { RepoTags?: string[] | null }[];
    return doc[0]?.RepoTags ?? [];
  }
  return [];
}

const STDIO_SYMLINKS: [string, string][] = [['/dev/stdin', '/proc/self/fd/0'], ['/dev/stdout', '/dev/console'], ['/dev/stderr', '/dev/console'], ['/dev/fd', '/proc/self/fd']];

/** docker2aci's mapping of an image config to an ACI app and annotations. */
function appFromConfig(image: Image, annotations: NameValue[]): AciApp | undefined {
  const c = image.config.config;
  if (!c) return undefined;
  const [user, group] = !c.User ? ['0', '0'] : c.User.includes(':') ? (c.User.split(':') as [string, string]) : [c.User, c.User];
  const app: AciApp = { exec: [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])], user, group };
  const env = new Map<string, string>();
  for (const v of c.Env ?? []) {
    const eq = v.indexOf('=');
    if (eq > 0) env.set(v.slice(0, eq), v.slice(eq + 1));
  }
  if (env.size) app.environment = [...env].map(([name, value]) => ({ name, value }));
  if (c.WorkingDir) app.workingDirectory = c.WorkingDir;
  const ports = Object.keys(c.ExposedPorts ?? {}).map((p) => {
    const [num, proto] = p.split('/') as [string, string | undefined];
    if (!/^\d+$/.test(num)) throw new BasaltError('invalid', `exposed port "${p}" is not a number`);
    return { name: sanitizeAcName(p), protocol: proto ?? 'tcp', port: Number(num), count: 1, socketActivated: false };
  });
  if (ports.length) app.ports = ports.sort((a, b) => (a.name < b.name ? -1 : 1));
  const seen = new Map<string, number>();
  const mounts = Object.keys(c.Volumes ?? {}).sort().map((p) => {
    let name = sanitizeAcName(join('volume', p));
    const n = seen.get(name);
    seen.set(name, (n ?? 0) + 1);
    if (n !== undefined) name = `${name}-${n}`;
    return { name, path: p };
  });
  if (mounts.length) app.mountPoints = mounts.sort((a, b) => (a.name < b.name ? -1 : 1));
  if (c.Labels && Object.keys(c.Labels).length) app.userLabels = c.Labels;
  if (c.Entrypoint?.length) annotations.push({ name: 'appc.io/docker/entrypoint', value: JSON.stringify(c.Entrypoint) });
  if (c.Cmd?.length) annotations.push({ name: 'appc.io/docker/cmd', value: JSON.stringify(c.Cmd) });
  return app;
}

function baseManifest(name: string, labels: Record<string, string>): ImageManifest {
  return { acKind: 'ImageManifest', acVersion: AC_VERSION, name, labels: Object.keys(labels).sort().map((k) => ({ name: k, value: labels[k] as string })) };
}

/** Writes one ACI: rootfs, the entries of `tar` under it (whiteouts dropped), stdio links, manifest last. */
async function writeAci(out: string, tar: Readable | undefined, manifest: ImageManifest, whitelist: Set<string> | undefined, compress: boolean): Promise<void> {
  const raw = new PassThrough();
  const body: Readable = compress ? raw.pipe(createGzip({ level: DEFAULT_GZIP_LEVEL })) : raw;
  const writing = (async () => {
    const writer = new TarWriter(raw);
    const dir = (path: string): TarHeader => ({ path, type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 });
    await writer.add(dir('rootfs'));
    const present = new Set<string>();
    const whiteouts: string[] = [];
    if (tar)
      for await (const entry of readTar(tar, out)) {
        const parts = entryComponents(entry.path, out);
        if (parts.length === 0) continue;
        const abs = `/${parts.join('/')}`;
        const wo = classifyWhiteout(parts[parts.length - 1] as string);
        if (wo) {
          if (wo.kind === 'delete') whiteouts.push(`/${[...parts.slice(0, -1), wo.name].join('/')}`);
          continue;
        }
        if (abs === '/dev' && entry.type !== 'directory') throw new BasaltError('invalid', `${out}: invalid layer: "/dev" is not a directory`);
        present.add(abs);
        whitelist?.add(abs);
        const header: TarHeader = { ...entry, path: `rootfs${abs}` };
        if (entry.type === 'hardlink' && entry.linkname) header.linkname = `rootfs/${entryComponents(entry.linkname, out).join('/')}`;
        await writer.add(header, entry.body);
      }
    for (const w of whiteouts) for (const p of [...(whitelist ?? [])]) if (p === w || p.startsWith(`${w}/`)) whitelist?.delete(p);
    for (const [link, target] of STDIO_SYMLINKS) {
      if (present.has(link)) continue;
      await writer.add({ path: `rootfs${link}`, type: 'symlink', linkname: target, mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 0 });
      whitelist?.add(link);
    }
    const final = whitelist ? { ...manifest, pathWhitelist: [...whitelist].sort() } : manifest;
    const bytes = serializeManifest(final);
    await writer.add({ path: 'manifest', type: 'file', mode: 0o644, uid: 0, gid: 0, size: bytes.length, mtime: 0 }, bytes);
    await writer.finish();
  })().catch((e: unknown) => {
    raw.destroy(e as Error);
    throw e;
  });
  await Promise.all([writeStreamAtomic(out, body), writing]);
}

export interface DockerToAciOptions {
  outDir: string;
  /** One ACI per layer linked by dependencies instead of one squashed ACI. */
  noSquash?: boolean;
  compression?: boolean;
  /** NAME[:TAG] to name the result when the source carries no usable name. */
  imageName?: string;
  transport?: TransportOptions;
}

/**
 * docker2aci: converts an image from any basalt transport (a docker-archive file given as a
 * plain path too) into ACIs with docker2aci's manifest mapping and file names: squashed by
 * default into `REPO-TAG.aci` (slashes as dashes); with noSquash one ACI per layer, named
 * `INDEX/REPO-DIGEST-TAG-OS-ARCH.aci` as docker2aci names them, the top one depending on
 * the others and each carrying the pathWhitelist of the layers up to it.
 */
export async function dockerToAci(source: string, options: DockerToAciOptions): Promise<{ files: string[]; manifests: ImageManifest[] }> {
  const name = (await stat(source).then((s) => s.isFile(), () => false)) ? `docker-archive:${source}` : source;
  const src = await openSource(name, options.transport ?? {});
  try {
    const image = await readImage(src);
    const docker = parseDockerName(options.imageName ?? (await dockerNameOf(name, image)));
    const platform = appcOsArch(image.config.os, image.config.architecture, image.config.variant);
    if (!platform) throw new BasaltError('unsupported', `${name} is for ${image.config.os}/${image.config.architecture}, which has no App Container os/arch`);
    const annotations: NameValue[] = [];
    const add = (k: string, v: string | undefined): void => {
      if (v) annotations.push({ name: k, value: v });
    };
    add('author', image.config.author);
    add('created', image.config.created?.replace(/\.\d+Z$/, 'Z'));
    add('appc.io/docker/originalname', docker.original);
    add('appc.io/docker/registryurl', docker.indexUrl);
    add('appc.io/docker/repository', docker.imageName);
    add('appc.io/docker/imageid', image.raw?.configDescriptor.digest);
    add('appc.io/docker/manifesthash', image.raw?.manifest.digest);
    const app = appFromConfig(image, annotations);
    const compress = options.compression !== false;
    const labels = { version: docker.tag, os: platform.os, arch: platform.arch };
    const files: string[] = [];
    const manifests: ImageManifest[] = [];
    if (!options.noSquash) {
      const m: ImageManifest = { ...baseManifest(sanitizeAcIdentifier(`${docker.indexUrl}/${docker.imageName}`), labels), ...(app ? { app } : {}), annotations };
      const out = join(options.outDir, `${docker.imageName.replace(/\//g, '-')}-${docker.tag}.aci`);
      const flat = new PassThrough();
      const flattening = exportFlattened(image.layers.map((l) => () => l.open()), flat, { what: `layer of ${name}` }).catch((e: unknown) => {
        flat.destroy(e as Error);
        throw e;
      });
      await Promise.all([writeAci(out, flat, m, undefined, compress), flattening]);
      files.push(out);
      manifests.push(m);
    } else {
      const whitelist = new Set<string>();
      const lower: ImageManifest[] = [];
      for (const [i, layer] of image.layers.entries()) {
        const top = i === image.layers.length - 1;
        const aciName = `${docker.indexUrl}/${docker.imageName}-${layer.descriptor.digest}`;
        let m = baseManifest(sanitizeAcIdentifier(aciName), top ? labels : { os: platform.os, arch: platform.arch });
        if (top) m = { ...m, ...(app ? { app } : {}), annotations, ...(lower.length ? { dependencies: lower.map((d) => ({ imageName: d.name, ...(d.labels ? { labels: d.labels } : {}) })) } : {}) };
        const out = join(options.outDir, `${aciName}-${docker.tag}-${platform.os}-${platform.arch}.aci`);
        await writeAci(out, await autoDecompress(await layer.open()), m, whitelist, compress);
        files.push(out);
        const written = await readAci(out, { mode: 'strict' });
        manifests.push(written.manifest);
        lower.push(written.manifest);
      }
      if (image.layers.length === 0) throw new BasaltError('invalid', `${name} has no layers`);
    }
    return { files, manifests };
  } finally {
    await src.close();
  }
}
