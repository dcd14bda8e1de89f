import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { BasaltError, ioError } from '../oci/errors.js';
import { readTar, type TarEntry } from '../oci/layer/tar.js';
import { parseImageManifest, type ImageManifest, type ValidationMode } from './manifest.js';

/** What an ACI file is compressed with (the spec allows gzip, bzip2, xz or none). */
export type AciCompression = 'gzip' | 'bzip2' | 'xz' | 'none';

/** Sniffs a file's first bytes the way actool does (gzip, bzip2, xz magic; tar's "ustar" at 257). */
export function sniffAci(head: Buffer): AciCompression | 'text' | 'unknown' {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'none';
  const text = head.toString('utf8');
  if (head.length > 0 && !text.includes('\uFFFD') && !/[\x00-\x08\x0e-\x1f]/.test(text)) return 'text';
  return 'unknown';
}

export async function readHead(path: string, n = 512): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw ioError(path, e);
  }
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * The uncompressed tar stream of an ACI. bzip2 and xz go through the system's `bzip2` and
 * `xz` programs (Node has neither built in; actool itself runs xz the same way).
 */
export async function openAciTar(path: string): Promise<{ stream: Readable; compression: AciCompression }> {
  const kind = sniffAci(await readHead(path));
  const input = createReadStream(path);
  if (kind === 'gzip') {
    const gunzip = createGunzip();
    input.on('error', (e) => gunzip.destroy(e));
    return { stream: input.pipe(gunzip), compression: 'gzip' };
  }
  if (kind === 'bzip2' || kind === 'xz') {
    const child = spawn(kind, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out = new PassThrough();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (e: NodeJS.ErrnoException) =>
      out.destroy(e.code === 'ENOENT' ? new BasaltError('tool', `${path} is ${kind}-compressed and the "${kind}" program is not installed`, { hint: `install Debian's ${kind === 'xz' ? 'xz-utils' : 'bzip2'}` }) : e));
    child.on('close', (code) => {
      if (code !== 0) out.destroy(new BasaltError('integrity', `${path}: ${kind} could not decompress it (${stderr.trim() || `exit ${code}`})`));
    });
    input.on('error', (e) => out.destroy(e));
    // A reader that stops early (an invalid entry) must not leave the decompressor blocked on a full pipe.
    out.on('close', () => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    });
    input.pipe(child.stdin);
    child.stdin.on('error', () => undefined); // the child's exit status reports the failure
    child.stdout.pipe(out, { end: false });
    child.stdout.on('end', () => {
      child.once('close', (code) => {
        if (code === 0) out.end();
      });
      if (child.exitCode === 0) out.end();
    });
    return { stream: out, compression: kind };
  }
  if (kind === 'none') return { stream: input, compression: 'none' };
  input.destroy();
  throw new BasaltError('invalid', `${path} is not an ACI: it is neither a tar archive nor gzip, bzip2 or xz compressed`);
}

/** Hashes the uncompressed tar on its way to the reader: the image ID is sha512 of it. */
class Sha512Tap extends Transform {
  private readonly hash = createHash('sha512');
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    cb(null, chunk);
  }
  id(): string {
    return `sha512-${this.hash.digest('hex')}`;
  }
}

/** Go's path.Clean, which actool applies to entry names before checking them. */
export function goClean(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(part);
  }
  const joined = out.join('/');
  return rooted ? `/${joined}` : joined || '.';
}

export interface AciInfo {
  manifest: ImageManifest;
  manifestBytes: Buffer;
  /** `sha512-` and the hex SHA-512 of the uncompressed tar. */
  imageId: string;
  compression: AciCompression;
  /** Entries other than `manifest` and `rootfs` itself. */
  entries: number;
}

export interface ReadAciOptions {
  mode?: ValidationMode;
  /** Called for every entry under rootfs/ (path relative to rootfs) in archive order. */
  onRootfsEntry?: (entry: TarEntry, relative: string) => Promise<void>;
}

/**
 * Reads and validates an ACI: the layout (only `manifest` and `rootfs/` at the top, no
 * duplicates, nothing outside rootfs) and its manifest. In strict mode hardlinks must point
 * inside rootfs and `..` may not appear; 'actool' mode keeps actool's checks (prefix test
 * on cleaned names) so the two agree.
 */
export async function readAci(path: string, options: ReadAciOptions = {}): Promise<AciInfo> {
  const mode = options.mode ?? 'strict';
  const { stream, compression } = await openAciTar(path);
  const tap = new Sha512Tap();
  stream.on('error', (e) => tap.destroy(e));
  stream.pipe(tap);
  let manifestBytes: Buffer | undefined;
  let sawRootfs = false;
  let entries = 0;
  const seen = new Set<string>();
  const problems: string[] = [];
  try {
    for await (const entry of readTar(tap, path)) {
      const raw = entry.path;
      const name = goClean(raw);
      if (mode === 'strict') {
        if (raw.startsWith('/')) throw layoutError(path, `entry "${raw}" has an absolute path`);
        if (raw.split('/').includes('..')) throw layoutError(path, `entry "${raw}" has a ".." component`);
        if (name !== '.' && seen.has(name)) throw layoutError(path, `duplicate entry "${name}"`);
        seen.add(name);
      }
      if (name === '.') continue;
      if (name === 'manifest') {
        if (entry.type !== 'file' && mode === 'strict') throw layoutError(path, '"manifest" is not a regular file');
        const bytes = await collect(entry.body, 1024 * 1024, path);
        // actool copies every "manifest" entry into one buffer, so a second one spoils the JSON.
        manifestBytes = manifestBytes && mode === 'actool' ? Buffer.concat([manifestBytes, bytes]) : bytes;
        continue;
      }
      if (name === 'rootfs') {
        if (entry.type !== 'directory') throw layoutError(path, 'rootfs is not a directory');
        sawRootfs = true;
        continue;
      }
      entries++;
      if (mode === 'actool') {
        if (seen.has(name)) throw layoutError(path, `duplicate entry "${name}"`);
        seen.add(name);
        if (!name.startsWith('rootfs')) problems.push(name);
        continue;
      }
      if (!name.startsWith('rootfs/')) throw layoutError(path, `entry "${name}" is outside rootfs/ (an ACI holds only "manifest" and "rootfs/" at the top)`);
      if (entry.type === 'hardlink') {
        const target = goClean(entry.linkname ?? '');
        if (!target.startsWith('rootfs/')) throw layoutError(path, `hardlink "${name}" points outside rootfs/ ("${entry.linkname}")`);
      }
      if (options.onRootfsEntry) await options.onRootfsEntry(entry, name.slice('rootfs/'.length));
    }
  } catch (e) {
    stream.destroy();
    throw e;
  }
  if (!manifestBytes) throw layoutError(path, 'no image manifest ("manifest") in the archive');
  if (!sawRootfs) throw layoutError(path, 'no rootfs directory in the archive');
  const manifest = parseImageManifest(manifestBytes, path, mode);
  if (problems.length > 0) throw layoutError(path, `unrecognized file path in layout: "${problems[0]}"`);
  return { manifest, manifestBytes, imageId: tap.id(), compression, entries };
}

function layoutError(path: string, rule: string): BasaltError {
  return new BasaltError('invalid', `${path}: invalid ACI: ${rule}`, { hint: 'see the App Container spec v0.8.11, "Image Archives" and "Image Layout"' });
}

export async function collect(body: Readable, limit: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BasaltError('invalid', `${what}: the manifest is larger than ${limit} bytes`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

/** Just the image ID of an ACI file (sha512 of its uncompressed tar). */
export async function aciImageId(path: string): Promise<string> {
  const { stream } = await openAciTar(path);
  const hash = createHash('sha512');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `sha512-${hash.digest('hex')}`;
}

