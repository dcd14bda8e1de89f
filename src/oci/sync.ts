import { readFile } from 'node:fs/promises';
import { readdir, stat } from 'node:fs/promises';
import { join, relative, posix } from 'node:path';
import { loadYaml } from './yaml.js';
import { BasaltError, ioError } from './errors.js';
import { parseReference, formatReference } from './reference.js';
import { copyImage } from './copy.js';
import { openDestination, openSource } from './transports/index.js';
import { listTags } from './catalog.js';
import type { TransportOptions } from './transport.js';

export type SyncSourceKind = 'docker' | 'dir' | 'yaml';
export type SyncDestKind = 'docker' | 'dir';

export interface SyncOptions {
  scoped?: boolean;
  all?: boolean;
  dryRun?: boolean;
  keepGoing?: boolean;
  sourceOptions?: TransportOptions;
  destOptions?: TransportOptions;
  onImage?: (from: string, to: string, digest?: string) => void;
}

interface PlannedImage {
  /** Source image name with transport. */
  from: string;
  /** `registry/repo` (or the path under a sync dir), used to name the destination. */
  repoPath: string;
  tag: string;
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

async function planDocker(src: string, options: TransportOptions): Promise<PlannedImage[]> {
  const ref = parseReference(src.replace(/^docker:\/\//, ''));
  const repoPath = `${ref.registry}/${ref.repository}`;
  if (ref.digest) throw new BasaltError('usage', `sync source "${src}" names a digest; give a repository or a tag`);
  const tags = ref.tag ? [ref.tag] : await listTags(`docker://${repoPath}`, options);
  return tags.map((tag) => ({ from: `docker://${repoPath}:${tag}`, repoPath, tag, options }));
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
      for (const tag of list) plan.push({ from: `docker://${repoPath}${tag.startsWith('sha256:') ? '@' : ':'}${tag}`, repoPath, tag, options });
    }
    for (const [repo, pattern] of Object.entries(value['images-by-tag-regex'] ?? {})) {
      let re: RegExp;
      try {
        re = new RegExp(pattern);
      } catch (e) {
        throw new BasaltError('invalid', `sync file ${file}: ${registry}/${repo} has a bad tag regex: ${(e as Error).message}`);
      }
      const repoPath = `${registry}/${repo}`;
      for (const tag of await listTags(`docker://${repoPath}`, options)) if (re.test(tag)) plan.push({ from: `docker://${repoPath}:${tag}`, repoPath, tag, options });
    }
  }
  return plan;
}

/** A directory written by `sync --dest dir`: one OCI layout per repository, one ref per tag. */
async function planDir(root: string, options: TransportOptions): Promise<PlannedImage[]> {
  const plan: PlannedImage[] = [];
  async function walk(dir: string): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true }).catch((e: unknown) => {
      throw ioError(`sync directory ${dir}`, e);
    });
    if (entries.some((e) => e.name === 'oci-layout' && e.isFile())) {
      const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests?: { annotations?: Record<string, string> }[] };
      const repoPath = relative(root, dir).split('/').join(posix.sep);
      for (const m of index.manifests ?? []) {
        const tag = m.annotations?.['org.opencontainers.image.ref.name'];
        if (tag) plan.push({ from: `oci:${dir}:${tag}`, repoPath, tag, options });
      }
      return;
    }
    for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name));
  }
  if (!(await stat(root).catch(() => undefined))?.isDirectory()) throw new BasaltError('not-found', `sync source directory ${root} does not exist`);
  await walk(root);
  return plan;
}

function destinationName(image: PlannedImage, dst: string, kind: SyncDestKind, scoped: boolean): string {
  const suffix = scoped ? image.repoPath : posix.basename(image.repoPath);
  const tag = image.tag.startsWith('sha256:') ? `@${image.tag}` : `:${image.tag}`;
  if (kind === 'docker') {
    const prefix = dst.replace(/^docker:\/\//, '').replace(/\/+$/, '');
    // Validate early so a typo fails before anything is copied.
    formatReference(parseReference(`${prefix}/${suffix}${tag.startsWith('@') ? '' : tag}`));
    return `docker://${prefix}/${suffix}${tag}`;
  }
  // oci:DIR:REF splits at the first colon, so a registry port in a scoped path becomes `_`.
  const dir = join(dst, suffix.replace(/:/g, '_'));
  if (tag.startsWith('@')) return `oci:${dir}:${image.tag.replace(':', '-')}`;
  return `oci:${dir}${tag}`;
}

/** Copies every planned image; returns how many were copied and which failed. */
export async function syncImages(src: string, srcKind: SyncSourceKind, dst: string, dstKind: SyncDestKind, options: SyncOptions = {}): Promise<{ copied: number; failed: { image: string; error: string }[] }> {
  const base = options.sourceOptions ?? {};
  const plan = srcKind === 'docker' ? await planDocker(src, base) : srcKind === 'yaml' ? await planYaml(src, base) : await planDir(src, base);
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
        const result = await copyImage(source, await openDestination(to, options.destOptions ?? {}), { all: Boolean(options.all) });
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
