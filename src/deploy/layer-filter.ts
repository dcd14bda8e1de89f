import type { Readable, Writable } from 'node:stream';
import { readTar, TarWriter, type TarHeader } from '../oci/layer/tar.js';
import { ancestorsOf, classifyWhiteout, entryComponents, OPAQUE_MARKER, WHITEOUT_PREFIX } from '../oci/layer/whiteout.js';

/**
 * Rewrites one OCI layer tar into the tar ostree's `commit --tree=tar=` imports:
 * - /etc moves to /usr/etc (ostree's layout; the deployment's /etc is made from it);
 * - whiteouts are kept as the empty files `.wh.NAME` and `.wh..wh..opq`, under their
 *   rewritten names, so the layer commit records them and `ostree checkout --whiteouts`
 *   applies them when layers are merged (ostree commits cannot hold deletions otherwise);
 * - char/block devices and fifos are dropped: ostree repositories cannot store them;
 * - paths are normalised (no `./`, no trailing slashes); `..` components are refused.
 * Directories the layer only implies (a child without its parent's entry) are reported: ostree
 * creates them with default metadata, which must not override a lower layer's directory.
 */
export interface FilterSummary {
  entries: number;
  whiteouts: number;
  opaqueDirs: number;
  droppedNodes: string[];
  /** Directories that had no entry of their own in the layer (after the /etc rewrite). */
  implicitDirs: string[];
  /** Uncompressed file bytes passed through. */
  bytes: number;
}

/** `etc/…` → `usr/etc/…`; everything else unchanged. */
export function ostreePath(components: readonly string[]): string[] {
  return components[0] === 'etc' ? ['usr', ...components] : [...components];
}

export async function filterLayerForOstree(tar: Readable, out: Writable, what: string, onBytes?: (total: number) => void): Promise<FilterSummary> {
  const summary: FilterSummary = { entries: 0, whiteouts: 0, opaqueDirs: 0, droppedNodes: [], implicitDirs: [], bytes: 0 };
  const writer = new TarWriter(out);
  const explicitDirs = new Set<string>();
  const impliedDirs = new Set<string>();
  const note = (path: string): void => {
    for (const dir of ancestorsOf(path)) if (!explicitDirs.has(dir)) impliedDirs.add(dir);
  };
  const emptyFile = (path: string, like: TarHeader): TarHeader => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: like.mtime });

  for await (const entry of readTar(tar, what)) {
    const components = entryComponents(entry.path, what);
    const name = components[components.length - 1];
    if (name === undefined) continue; // the root: ostree owns its metadata
    const whiteout = classifyWhiteout(name);
    if (whiteout) {
      if (whiteout.kind === 'ignore') continue;
      const dir = components.slice(0, -1);
      let path: string;
      if (whiteout.kind === 'opaque') {
        summary.opaqueDirs++;
        path = [...ostreePath(dir), OPAQUE_MARKER].join('/');
      } else {
        summary.whiteouts++;
        const target = ostreePath([...dir, whiteout.name]);
        target[target.length - 1] = `${WHITEOUT_PREFIX}${target[target.length - 1]}`;
        path = target.join('/');
      }
      note(path);
      await writer.add(emptyFile(path, entry), Buffer.alloc(0));
      continue;
    }
    if (entry.type === 'char' || entry.type === 'block' || entry.type === 'fifo') {
      summary.droppedNodes.push(entry.path);
      continue;
    }
    const path = ostreePath(components).join('/');
    // User and group names are left out: ostree stores numeric ids only.
    const header: TarHeader = { path, type: entry.type, mode: entry.mode, uid: entry.uid, gid: entry.gid, size: entry.size, mtime: entry.mtime };
    if (entry.linkname !== undefined) header.linkname = entry.linkname;
    if (entry.xattrs && entry.xattrs.size > 0) header.xattrs = entry.xattrs;
    if (entry.type === 'hardlink') header.linkname = ostreePath(entryComponents(entry.linkname ?? '', what)).join('/');
    if (entry.type === 'directory') {
      explicitDirs.add(path);
      impliedDirs.delete(path);
    }
    note(path);
    if (entry.type === 'file') {
      await writer.add(header, entry.body);
      summary.bytes += entry.size;
      onBytes?.(summary.bytes);
    } else await writer.add(header);
    summary.entries++;
  }
  await writer.finish();
  summary.implicitDirs = [...impliedDirs].sort();
  return summary;
}
