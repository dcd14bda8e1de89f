import { readFile } from 'node:fs/promises';
import { readdir, stat } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import { basename, join, relative, resolve, posix, sep } from 'node:path';
import { loadYaml } from './yaml.js';
import { BasaltError, ioError } from './errors.js';
import { parseReference, formatReference } from './reference.js';
import { copyImage } from './copy.js';
import { openDestination, openSource } from './transports/index.js';
import { listTags } from './catalog.js';
import type { ImageDestination, ImageSource, TransportOptions } from './transport.js';
import type { ManifestBlob } from './manifest.js';

export type SyncSourceKind = 'docker' | 'dir' | 'oci' | 'yaml';
export type SyncDestKind = 'docker' | 'dir' | 'oci';

/** Lets the caller wrap each copy (signature carrying lives in trust, which oci must not import). */
export interface SyncCopyHooks {
  destination: ImageDestination;
  beforeWrite?: (top: ManifestBlob) => Promise<void>;
}

export interface SyncOptions {
  scoped?: boolean;
  all?: boolean;
  dryRun?: boolean;
  keepGoing?: boolean;
  sourceOptions?: TransportOptions;
  destOptions?: TransportOptions;
  onImage?: (from: string, to: string, digest?: string) => void;
  prepare?: (source: ImageSource, from: string, destination: ImageDestination) => SyncCopyHooks;
}

interface PlannedImage {
  /** Source image name with transport. */
  from: string;
  /**
   * skopeo sync's destination suffix: the source's full reference (`host/repo/path:tag`,
   * `host/repo@sha256:…`) or, for a directory source, the image's path under it. Without
   * --scoped only its last path component is used.
   */
  suffix: string;
  options: TransportOptions;
}

/** The part of the YAML file skopeo sync reads, per registry. */
interface YamlRegistry {
  images?: Record<string, string[] | null>;
  'images-by-tag-regex'?: Record<string, string>;
  credentials?: { username?: string; password?: string };
  'tls-verify'?: boolean;
  'cert-dir'?: string;
}

function planned(repoPath: string, tag: string, options: TransportOptions): PlannedImage {
  const sep = tag.startsWith('sha256:') || tag.startsWith('sha512:') ? '@' : ':';
  return { from: `docker://${repoPath}${sep}${tag}`, suffix: `${repoPath}${sep}${tag}`, options };
}

async function planDocker(src: string, options: TransportOptions): Promise<PlannedImage[]> {
  const ref = parseReference(src.replace(/^docker:\/\//, ''));
  const repoPath = `${ref.registry}/${ref.repository}`;
  if (ref.digest) throw new BasaltError('usage', `sync source "${src}" names a digest; give a repository or a tag`);
  const tags = ref.tag ? [ref.tag] : await listTags(`docker://${repoPath}`, options);
  return tags.map((tag) => planned(repoPath, tag, options));
}

async function planYaml(file: string, base: TransportOptions): Promise<PlannedImage[]> {
  let doc: unknown;
  try {
    doc = (await loadYaml()).parse(await readFile(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw ioError(`sync file ${file}`, e);
    throw new BasaltError('invalid', `sync file ${file} is not valid YAML: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null) throw new BasaltError('invalid', `sync file ${file}: expected a mapping of registries`);
  const plan: PlannedImage[] = [];
  for (const [registry, value] of Object.entries(doc as Record<string, YamlRegistry>)) {
    const known = new Set(['images', 'images-by-tag-regex', 'images-by-semver', 'credentials', 'tls-verify', 'cert-dir']);
    for (const key of Object.keys(value ?? {}))
      if (!known.has(key)) throw new BasaltError('invalid', `sync file ${file}: registry ${registry} has unknown key "${key}"`);
    const options: TransportOptions = { ...base };
    if (value['tls-verify'] !== undefined) options.tlsVerify = value['tls-verify'];
    if (value['cert-dir']) options.certDir = value['cert-dir'];
    if (value.credentials?.username) options.creds = `${value.credentials.username}:${value.credentials.password ?? ''}`;
    for (const [repo, tags] of Object.entries(value.images ?? {})) {
      const repoPath = `${registry}/${repo}`;
      const list = tags && tags.length ? tags : await listTags(`docker://${repoPath}`, options);
      for (const tag of list) plan.push(planned(repoPath, tag, options));
    }
    for (const [repo, pattern] of Object.entries(value['images-by-tag-regex'] ?? {})) {
      let re: RegExp;
      try {
        re = new RegExp(pattern);
      } catch (e) {
        throw new BasaltError('invalid', `sync file ${file}: ${registry}/${repo} has a bad tag regex: ${(e as Error).message}`);
      }
      const repoPath = `${registry}/${repo}`;
      for (const tag of await listTags(`docker://${repoPath}`, options)) if (re.test(tag)) plan.push(planned(repoPath, tag, options));
    }
  }
  return plan;
}

async function checkRoot(root: string): Promise<void> {
  if (!(await stat(root).catch(() => undefined))?.isDirectory()) throw new BasaltError('not-found', `sync source directory ${root} does not exist`);
}

async function entriesOf(dir: string): Promise<Dirent[]> {
  return readdir(dir, { withFileTypes: true }).catch((e: unknown) => {
    throw ioError(`sync directory ${dir}`, e);
  });
}

/**
 * A directory of dir: images, as skopeo sync --dest dir writes it (DEST/REPO:TAG, or
 * DEST/HOST/PATH/REPO:TAG with --scoped): every directory holding a manifest.json is an
 * image, named by its path under the root (the root itself when it is one image).
 */
async function planDir(root: string, options: TransportOptions): Promise<PlannedImage[]> {
  await checkRoot(root);
  const plan: PlannedImage[] = [];
  async function walk(dir: string): Promise<void> {
    const entries = await entriesOf(dir);
    if (entries.some((e) => e.name === 'manifest.json' && e.isFile())) {
      const rel = relative(root, dir).split(sep).join(posix.sep);
      plan.push({ from: `dir:${dir}`, suffix: rel === '' ? basename(resolve(root)) : rel, options });
      return;
    }
    // Hidden directories are basalt's (or others') unfinished writes, not images.
    for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.')) await walk(join(dir, e.name));
  }
  await walk(root);
  return plan.sort((a, b) => a.suffix.localeCompare(b.suffix));
}

/** A directory written by `sync --dest oci`: one OCI layout per repository, one ref per tag. */
async function planOciLayouts(root: string, options: TransportOptions): Promise<PlannedImage[]> {
  await checkRoot(root);
  const plan: PlannedImage[] = [];
  async function walk(dir: string): Promise<void> {
    const entries = await entriesOf(dir);
    if (entries.some((e) => e.name === 'oci-layout' && e.isFile())) {
      const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests?: { annotations?: Record<string, string> }[] };
      const repoPath = relative(root, dir).split(sep).join(posix.sep);
      for (const m of index.manifests ?? []) {
        const tag = m.annotations?.['org.opencontainers.image.ref.name'];
        if (tag) plan.push({ from: `oci:${dir}:${tag}`, suffix: `${repoPath || basename(resolve(root))}:${tag}`, options });
      }
      return;
    }
    for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name));
  }
  await walk(root);
  return plan;
}

/** Splits a suffix into its path and its `:tag` / `@digest` (at the last component). */
function splitSuffix(suffix: string): { path: string; tag: string | undefined; digest: string | undefined } {
  const slash = suffix.lastIndexOf('/');
  const at = suffix.indexOf('@', slash + 1);
  if (at >= 0) return { path: suffix.slice(0, at), tag: undefined, digest: suffix.slice(at + 1) };
  const colon = suffix.indexOf(':', slash + 1);
  if (colon >= 0) return { path: suffix.slice(0, colon), tag: suffix.slice(colon + 1), digest: undefined };
  return { path: suffix, tag: undefined, digest: undefined };
}

function destinationName(image: PlannedImage, dst: string, kind: SyncDestKind, scoped: boolean): string {
  const suffix = scoped ? image.suffix : posix.basename(image.suffix);
  if (kind === 'dir') return `dir:${join(dst, suffix)}`;
  const { path, tag, digest } = splitSuffix(suffix);
  if (kind === 'docker') {
    const prefix = dst.replace(/^docker:\/\//, '').replace(/\/+$/, '');
    const name = `${prefix}/${path}${digest ? `@${digest}` : tag ? `:${tag}` : ''}`;
    // Validate early so a typo fails before anything is copied.
    formatReference(parseReference(name));
    return `docker://${name}`;
  }
  // oci:DIR:REF splits at the first colon, so a registry port in a scoped path becomes `_`.
  const dir = join(dst, path.replace(/:/g, '_'));
  return `oci:${dir}:${digest ? digest.replace(':', '-') : (tag ?? 'latest')}`;
}

/** Copies every planned image; returns how many were copied and which failed. */
export async function syncImages(src: string, srcKind: SyncSourceKind, dst: string, dstKind: SyncDestKind, options: SyncOptions = {}): Promise<{ copied: number; failed: { image: string; error: string }[] }> {
  if (dstKind === 'dir' && (srcKind === 'dir' || srcKind === 'oci'))
    throw new BasaltError('usage', `sync from ${srcKind} to dir is not supported (skopeo refuses it too)`, { hint: 'copy the directory with rsync or cp -a' });
  const base = options.sourceOptions ?? {};
  const plan =
    srcKind === 'docker' ? await planDocker(src, base) : srcKind === 'yaml' ? await planYaml(src, base) : srcKind === 'dir' ? await planDir(src, base) : await planOciLayouts(src, base);
  if (plan.length === 0) throw new BasaltError('not-found', `sync: nothing to copy from ${src}`);
  const failed: { image: string; error: string }[] = [];
  let copied = 0;
  for (const image of plan) {
    const to = destinationName(image, dst, dstKind, Boolean(options.scoped));
    if (options.dryRun) {
      options.onImage?.(image.from, to);
      copied++;
      continue;
    }
    try {
      const source = await openSource(image.from, image.options);
      try {
        const opened = await openDestination(to, options.destOptions ?? {});
        const hooks = options.prepare?.(source, image.from, opened) ?? { destination: opened };
        const result = await copyImage(source, hooks.destination, { all: Boolean(options.all), ...(hooks.beforeWrite ? { beforeWrite: hooks.beforeWrite } : {}) });
        options.onImage?.(image.from, to, result.digest);
        copied++;
      } finally {
        await source.close();
      }
    } catch (e) {
      if (!options.keepGoing) throw e;
      failed.push({ image: image.from, error: (e as Error).message });
    }
  }
  return { copied, failed };
}
