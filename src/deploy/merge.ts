import { lstat, mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ioError } from '../oci/errors.js';
import { runRepo } from './ostree-tool.js';
import { crashPoint } from './crash-points.js';
import { listLayer } from './tree-listing.js';
import { implicitDirsOf } from './layer-commit.js';
import { applyDirectoryMetadata, upperDirectoryMetadata } from './dir-metadata.js';

export interface MergeOptions {
  /** The merged commit's ref. */
  ref: string;
  /** `--add-metadata-string` pairs. */
  metadata: Record<string, string>;
  /** `--add-metadata` pairs whose values are GVariant text. */
  variantMetadata?: Record<string, string>;
  /** Seconds since the epoch, the commit's timestamp (the image's creation time). */
  timestamp?: number;
  subject?: string;
}

export interface MergeResult {
  commit: string;
  /** Directories whose metadata came from an upper layer's entry. */
  directoriesFixed: number;
  bootable: boolean;
}

/**
 * Merges layer commits (bottom first) into one commit with OCI semantics: each layer is checked
 * out over the previous ones into a hardlinked staging tree inside the repository (`--union`
 * replaces files, `--whiteouts` applies `.wh.*` deletions and opaque markers), directory
 * metadata of upper layers is put back (union keeps lower directories as they were), the
 * ostree layout's /sysroot and /ostree symlink are added when missing, and the tree is
 * committed with `--link-checkout-speedup` (its files are already repository objects).
 */
export async function mergeLayers(repo: string, layerRefs: readonly string[], options: MergeOptions): Promise<MergeResult> {
  const staging = join(repo, 'tmp', `basalt-merge-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await mkdir(staging, { mode: 0o755 });
    for (const ref of layerRefs) await runRepo(repo, ['checkout', '--union', '--whiteouts', ref, staging], { what: `checking out ${ref}` });
    const upper = await Promise.all(layerRefs.slice(1).map(async (ref) => ({ listing: await listLayer(repo, ref), implicit: await implicitDirsOf(repo, ref) })));
    const directoriesFixed = await applyDirectoryMetadata(staging, upperDirectoryMetadata(upper));
    await addOstreeLayout(staging);
    const bootable = await hasKernel(staging);
    const args = ['commit', `--tree=dir=${staging}`, '--link-checkout-speedup', `--branch=${options.ref}`, '--no-bindings'];
    if (bootable) args.push('--bootable');
    if (options.subject) args.push(`--subject=${options.subject}`);
    if (options.timestamp !== undefined) args.push(`--timestamp=@${Math.floor(options.timestamp)}`);
    for (const [k, v] of Object.entries(options.metadata)) args.push(`--add-metadata-string=${k}=${v}`);
    for (const [k, v] of Object.entries(options.variantMetadata ?? {})) args.push(`--add-metadata=${k}=${v}`);
    await crashPoint('import-commit');
    const commit = (await runRepo(repo, args, { what: `committing the merged tree of ${options.ref}` })).stdout.trim();
    return { commit, directoriesFixed, bootable };
  } finally {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** ostree-prepare-root mounts the real root on /sysroot; /ostree points into it. */
async function addOstreeLayout(root: string): Promise<void> {
  const missing = async (p: string): Promise<boolean> =>
    lstat(join(root, p)).then(
      () => false,
      () => true,
    );
  try {
    if (await missing('sysroot')) await mkdir(join(root, 'sysroot'), { mode: 0o755 });
    if (await missing('ostree')) await symlink('sysroot/ostree', join(root, 'ostree'));
  } catch (e) {
    throw ioError(`adding the ostree layout to ${root}`, e);
  }
}

async function hasKernel(root: string): Promise<boolean> {
  const modules = join(root, 'usr/lib/modules');
  let versions: string[];
  try {
    versions = await readdir(modules);
  } catch {
    return false;
  }
  for (const v of versions) {
    if (await lstat(join(modules, v, 'vmlinuz')).then(() => true, () => false)) return true;
  }
  return false;
}
