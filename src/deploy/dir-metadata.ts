import { chmod, lchown, lstat } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { setXattrsBatch } from '../oci/layer/system-tools.js';
import type { DirMetadata, LayerListing } from './tree-listing.js';

/**
 * `ostree checkout --union` keeps a directory that already exists as it is, so a directory an
 * upper layer lists again (after `chmod 700 /srv` in a Containerfile, say) would keep the lower
 * layer's mode, owner and xattrs. OCI says the upper entry wins. This decides, top layer first,
 * which layer's entry each directory comes from, skipping entries a higher layer deleted
 * (whiteout) or hid (opaque directory), and skipping directories a layer only implied.
 */
export function upperDirectoryMetadata(layers: ReadonlyArray<{ listing: LayerListing; implicit: Set<string> | undefined }>): Map<string, DirMetadata> {
  const winners = new Map<string, DirMetadata>();
  const deleted: string[] = []; // by layers above the one being read
  const hidden: string[] = []; // opaque directories of layers above
  const isDead = (path: string): boolean =>
    deleted.some((d) => path === d || path.startsWith(`${d}/`)) || hidden.some((o) => path.startsWith(o === '' ? '' : `${o}/`) && path !== o);
  for (let k = layers.length - 1; k >= 0; k--) {
    const { listing, implicit } = layers[k] as { listing: LayerListing; implicit: Set<string> | undefined };
    if (implicit !== undefined) {
      for (const [path, meta] of listing.dirs) if (!winners.has(path) && !implicit.has(path) && !isDead(path)) winners.set(path, meta);
    }
    deleted.push(...listing.deleted);
    hidden.push(...listing.opaque);
  }
  return winners;
}

/** Sets mode, owner and xattrs of the staged directories that differ from their winning entry. */
export async function applyDirectoryMetadata(root: string, winners: Map<string, DirMetadata>): Promise<number> {
  const changed: string[] = [];
  const targets: Array<{ host: string; meta: DirMetadata }> = [];
  for (const [path, meta] of winners) {
    const host = join(root, path);
    let st;
    try {
      st = await lstat(host);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw ioError(`examining ${host}`, e);
    }
    if (!st.isDirectory()) continue;
    targets.push({ host, meta });
    if ((st.mode & 0o7777) !== meta.mode || st.uid !== meta.uid || st.gid !== meta.gid) {
      try {
        await lchown(host, meta.uid, meta.gid);
        await chmod(host, meta.mode);
      } catch (e) {
        throw ioError(`setting the metadata of ${host}`, e);
      }
      changed.push(path);
    }
  }
  const current = await readXattrs(targets.map((t) => t.host));
  const toSet: Array<{ path: string; xattrs: Map<string, Buffer> }> = [];
  for (const { host, meta } of targets) {
    const have = current.get(host) ?? new Map<string, Buffer>();
    for (const name of have.keys()) if (!meta.xattrs.has(name)) await removeXattr(host, name);
    const differs = [...meta.xattrs].some(([name, value]) => !have.get(name)?.equals(value));
    if (differs) toSet.push({ path: host, xattrs: meta.xattrs });
    if (differs || [...have.keys()].some((n) => !meta.xattrs.has(n))) changed.push(host);
  }
  const failures = await setXattrsBatch(toSet);
  if (failures.length > 0) throw new BasaltError('io', `setting xattrs of ${failures[0]?.path}: ${failures[0]?.reason}`);
  return changed.length;
}

function getfattr(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('getfattr', args, { maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      // getfattr exits 1 when some file has no xattrs it may list; its output is still whole.
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return reject(new BasaltError('tool', 'getfattr is not installed', { hint: 'install Debian\'s attr package' }));
      if (err && stdout === '' && stderr.trim() !== '') return reject(new BasaltError('tool', `getfattr failed: ${stderr.trim()}`));
      resolve(stdout);
    }),
  );
}

/** Every xattr of the given paths (not following symlinks), in batches of one getfattr each. */
async function readXattrs(paths: string[]): Promise<Map<string, Map<string, Buffer>>> {
  const result = new Map<string, Map<string, Buffer>>();
  for (let i = 0; i < paths.length; i += 500) {
    const out = await getfattr(['-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names', '--', ...paths.slice(i, i + 500)]);
    let current: Map<string, Buffer> | undefined;
    for (const line of out.split('\n')) {
      if (line.startsWith('# file: ')) {
        current = new Map();
        result.set(unescapeGetfattrPath(line.slice(8)), current);
      } else if (current && line.includes('=')) {
        const eq = line.indexOf('=');
        const value = line.slice(eq + 1);
        current.set(line.slice(0, eq), value.startsWith('0s') ? Buffer.from(value.slice(2), 'base64') : Buffer.from(value.replace(/^"(.*)"$/, '$1')));
      }
    }
  }
  return result;
}

/** getfattr writes unusual bytes in paths as \ooo. */
function unescapeGetfattrPath(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else bytes.push(...Buffer.from(s[i] as string, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

function removeXattr(path: string, name: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile('setfattr', ['-h', '-x', name, '--', path], (err, _stdout, stderr) => (err ? reject(new BasaltError('io', `removing xattr ${name} of ${path}: ${stderr.trim() || err.message}`)) : resolve())),
  );
}
