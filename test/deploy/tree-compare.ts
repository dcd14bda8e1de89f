import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readXattrsTree } from '../../src/oci/layer/system-tools.js';

/** A tree as comparable lines: type, mode, owner, size/content hash or link target, xattrs. */
export async function describeTree(root: string, map: (path: string) => string | undefined = (p) => p): Promise<Map<string, string>> {
  const xattrs = (await readXattrsTree(root)) ?? new Map();
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(join(root, rel))) {
      const path = rel ? `${rel}/${name}` : name;
      const host = join(root, path);
      const st = await lstat(host);
      const mapped = map(path);
      if (mapped !== undefined) {
        const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : 'other';
        let what = '';
        if (st.isFile()) what = createHash('sha256').update(await readFile(host)).digest('hex').slice(0, 16);
        if (st.isSymbolicLink()) what = await readlink(host);
        const x = [...(xattrs.get(host) ?? new Map<string, Buffer>())].sort().map(([k, v]) => `${k}=${v.toString('hex')}`).join(',');
        out.set(mapped, `${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${what} ${x}`);
      }
      if (st.isDirectory()) await walk(path);
    }
  };
  await walk('');
  return out;
}
