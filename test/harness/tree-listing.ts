import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTar } from '../../src/oci/layer/tar-reader.js';
import { run } from './tools.js';

/**
 * Trees as comparable lines, one per path: `d MODE UID:GID`, `f MODE UID:GID SIZE MD5`,
 * `l UID:GID TARGET`, `c|b|p MODE UID:GID` for device nodes and FIFOs. Used to prove that a
 * deployed tree equals `podman export` of its image.
 */
export type TreeListing = Map<string, string>;

/**
 * `podman export` of a fresh container of `image`, read entry by entry (hardlinks as their
 * target). podman writes to a file: it cannot open /dev/stdout when that is a socket.
 */
export async function podmanExportListing(image: string): Promise<TreeListing> {
  const id = run('podman', ['create', '--pull=never', image, '/bin/true']).trim();
  const dir = await mkdtemp(join(tmpdir(), 'basalt-export-'));
  try {
    const tar = join(dir, 'export.tar');
    run('podman', ['export', '-o', tar, id]);
    const out: TreeListing = new Map();
    for await (const e of readTar(createReadStream(tar), `podman export of ${image}`)) {
      const path = e.path.replace(/^\.?\/+/, '');
      if (path === '' || path === '.') {
        e.body.resume();
        continue;
      }
      const owner = `${e.uid}:${e.gid}`;
      const mode = e.mode.toString(8);
      if (e.type === 'file') {
        const hash = createHash('md5');
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
    return out;
  } finally {
    run('podman', ['rm', '-f', id]);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The shell pipeline that lists a tree in a guest (GNU find + md5sum, both in every Debian
 * base). md5, not sha256: emulated CPUs hash it twice as fast, and this compares trees, it
 * does not defend against an attacker. Two hashing processes use both virtual CPUs, each
 * writing its own file (lines from two writers on one pipe could interleave). Names
 * with newlines are not expected in an OS tree; names md5sum escapes are unescaped.
 */
export function guestListingCommand(dir: string): string {
  return `cd "${dir}" && find . -xdev -mindepth 1 -printf '%y %m %U:%G %s %P\\t%l\\n' && echo '--md5--' && rm -rf /tmp/md5.d && mkdir /tmp/md5.d && find . -xdev -type f -print0 | xargs -0 -r -n 400 -P 2 sh -c 'md5sum "$@" >> /tmp/md5.d/$$' sh && cat /tmp/md5.d/*`;
}

export function parseGuestListing(text: string): TreeListing {
  const [meta = '', sums = ''] = text.split('\n--md5--\n');
  const hashes = new Map<string, string>();
  for (const line of sums.split('\n')) {
    const m = /^\\?([0-9a-f]{32}) {2}\.\/(.*)$/.exec(line);
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
