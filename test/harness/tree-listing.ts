import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readTar } from '../../src/oci/layer/tar-reader.js';
import { run } from './tools.js';

/**
 * Trees as comparable lines, one per path: `d MODE UID:GID`, `f MODE UID:GID SIZE SHA256`,
 * `l UID:GID TARGET`, `c|b|p MODE UID:GID` for device nodes and FIFOs. Used to prove that a
 * deployed tree equals `podman export` of its image.
 */
export type TreeListing = Map<string, string>;

/** `podman export` of a fresh container of `image`, read entry by entry (hardlinks as their target). */
export async function podmanExportListing(image: string): Promise<TreeListing> {
  const id = run('podman', ['create', '--pull=never', image, '/bin/true']).trim();
  try {
    const child = spawn('podman', ['export', id], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
    const out: TreeListing = new Map();
    for await (const e of readTar(child.stdout, `podman export of ${image}`)) {
      const path = e.path.replace(/^\.?\/+/, '');
      if (path === '' || path === '.') {
        e.body.resume();
        continue;
      }
      const owner = `${e.uid}:${e.gid}`;
      const mode = e.mode.toString(8);
      if (e.type === 'file') {
        const hash = createHash('sha256');
        for await (const chunk of e.body) hash.update(chunk as Buffer);
        out.set(path, `f ${mode} ${owner} ${e.size} ${hash.digest('hex')}`);
      } else if (e.type === 'hardlink') {
        const target = out.get((e.linkname ?? '').replace(/^\.?\/+/, ''));
        out.set(path, target ?? `hardlink to missing ${e.linkname}`);
      } else if (e.type === 'directory') out.set(path, `d ${mode} ${owner}`);
      else if (e.type === 'symlink') out.set(path, `l ${owner} ${e.linkname}`);
      else out.set(path, `${e.type === 'char' ? 'c' : e.type === 'block' ? 'b' : 'p'} ${mode} ${owner}`);
      e.body.resume();
    }
    if ((await exited) !== 0) throw new Error(`podman export ${image} failed: ${stderr}`);
    return out;
  } finally {
    run('podman', ['rm', '-f', id]);
  }
}

/**
 * The shell pipeline that lists a tree in a guest (GNU find + sha256sum, both in every Debian
 * base). Names with newlines are not expected in an OS tree; names sha256sum escapes are unescaped.
 */
export function guestListingCommand(dir: string): string {
  return `cd "${dir}" && find . -xdev -mindepth 1 -printf '%y %m %U:%G %s %P\\t%l\\n' && echo '--sha256--' && find . -xdev -type f -print0 | xargs -0 -r sha256sum`;
}

export function parseGuestListing(text: string): TreeListing {
  const [meta = '', sums = ''] = text.split('\n--sha256--\n');
  const hashes = new Map<string, string>();
  for (const line of sums.split('\n')) {
    const m = /^\\?([0-9a-f]{64}) {2}\.\/(.*)$/.exec(line);
    if (m) hashes.set(line.startsWith('\\') ? (m[2] as string).replace(/\\n/g, '\n').replace(/\\\\/g, '\\') : (m[2] as string), m[1] as string);
  }
  const out: TreeListing = new Map();
  for (const line of meta.split('\n')) {
    const m = /^(\S) (\d+) (\d+:\d+) (\d+) ([^\t]*)\t(.*)$/.exec(line);
    if (!m) continue;
    const [, type, mode, owner, size, path, target] = m as unknown as [string, string, string, string, string, string, string];
    if (type === 'f') out.set(path, `f ${mode} ${owner} ${size} ${hashes.get(path) ?? 'unhashed'}`);
    else if (type === 'd') out.set(path, `d ${mode} ${owner}`);
    else if (type === 'l') out.set(path, `l ${owner} ${target}`);
    else out.set(path, `${type} ${mode} ${owner}`);
  }
  return out;
}

/** Differences between two listings, at most `limit` of them, as readable lines. */
export function listingDifferences(expected: TreeListing, actual: TreeListing, limit = 25): string[] {
  const diffs: string[] = [];
  for (const [path, want] of expected) {
    const got = actual.get(path);
    if (got !== want) diffs.push(`${path}: expected "${want}", deployed "${got ?? 'missing'}"`);
  }
  for (const path of actual.keys()) if (!expected.has(path)) diffs.push(`${path}: deployed "${actual.get(path)}", not in the image`);
  return diffs.slice(0, limit);
}
