import { chmod, lchown, link, lutimes, mkdir, open, readdir, rm, symlink } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import { BasaltError, ioError } from '../errors.js';
import { autoDecompress } from './compression.js';
import { SafeRoot } from './safe-root.js';
import { hasProgram, isRoot, makeNode, setXattrsBatch } from './system-tools.js';
import { readTar, type TarEntry } from './tar.js';
import { classifyWhiteout, entryComponents } from './whiteout.js';

export interface ApplyOptions {
  /** Names the layer in errors ("layer sha256:… of IMAGE"). */
  what?: string;
  /** Apply uid/gid with lchown (default: only when running as root). */
  chown?: boolean;
  /** Set xattrs through setfattr (default: when root and setfattr is installed). */
  xattrs?: boolean;
  /** Create char/block devices through mknod (default: only as root). Fifos are always made. */
  devices?: boolean;
}

export interface ApplySummary {
  /** Entries extracted (whiteouts not included). */
  entries: number;
  whiteouts: number;
  /** Device nodes not created (not root, or disabled). */
  skippedDevices: string[];
  /** Entries whose xattrs were not set, with the reason. */
  skippedXattrs: string[];
  /** Whether uid/gid were applied. */
  ownership: boolean;
}

/**
 * Applies one uncompressed layer tar onto `targetDir` with OCI semantics: whiteouts and
 * opaque directories remove lower content, the layer's entries replace what was there
 * (directories merge, keeping lower children, and take the upper metadata). Nothing is ever
 * written outside `targetDir`: a `..` component, a parent symlink leaving the root, or a
 * hardlink to outside is refused with an 'unsafe' error.
 */
export async function applyLayer(tar: Readable, targetDir: string, options: ApplyOptions = {}): Promise<ApplySummary> {
  const root = resolvePath(targetDir);
  await mkdir(root, { recursive: true }).catch((e: unknown) => {
    throw ioError(`creating ${root}`, e);
  });
  const what = options.what ?? 'layer';
  const layer = new LayerApplier(new SafeRoot(root, what), what, {
    chown: options.chown ?? isRoot(),
    xattrs: (options.xattrs ?? isRoot()) && (await hasProgram('setfattr')),
    devices: options.devices ?? isRoot(),
  });
  for await (const entry of readTar(tar, what)) await layer.apply(entry);
  return layer.finish();
}

/** Applies layers bottom to top; each may be compressed (it is sniffed). */
export async function unpackLayers(layers: AsyncIterable<Readable> | Iterable<Readable>, targetDir: string, options: ApplyOptions = {}): Promise<ApplySummary[]> {
  const summaries: ApplySummary[] = [];
  let index = 0;
  for await (const layer of layers) {
    index++;
    const what = `${options.what ?? 'layer'} ${index}`;
    summaries.push(await applyLayer(await autoDecompress(layer), targetDir, { ...options, what }));
  }
  return summaries;
}

class LayerApplier {
  /** Real paths this layer wrote: whiteouts and opaque markers only hide lower content. */
  private readonly written = new Set<string>(['']);
  private readonly pendingXattrs = new Map<string, Map<string, Buffer>>();
  /** Directory mtimes, set at the end (writing into a directory changes its mtime). */
  private readonly pendingDirTimes = new Map<string, number>();
  private readonly summary: ApplySummary;

  constructor(private readonly safe: SafeRoot, private readonly what: string, private readonly allow: { chown: boolean; xattrs: boolean; devices: boolean }) {
    this.summary = { entries: 0, whiteouts: 0, skippedDevices: [], skippedXattrs: [], ownership: allow.chown };
  }

  async apply(entry: TarEntry): Promise<void> {
    const components = entryComponents(entry.path, this.what);
    const name = components[components.length - 1];
    if (name === undefined) {
      if (entry.type === 'directory') await this.setMetadata([], entry);
      return;
    }
    const whiteout = classifyWhiteout(name);
    if (whiteout) {
      this.summary.whiteouts++;
      const dir = await this.safe.resolveDir(components.slice(0, -1), entry.path, false);
      if (dir === undefined || whiteout.kind === 'ignore') return;
      if (whiteout.kind === 'opaque') await this.hideLowerChildren(dir);
      else if (!this.written.has([...dir, whiteout.name].join('/'))) await this.remove([...dir, whiteout.name]);
      return;
    }
    const parent = await this.safe.resolveDir(components.slice(0, -1), entry.path, true, (created) => this.written.add(created.join('/')));
    const real = [...(parent as string[]), name];
    if (await this.create(real, entry)) this.summary.entries++;
    this.written.add(real.join('/'));
  }

  /** Creates the entry at `real`; false when it was skipped (a device node without privileges). */
  private async create(real: string[], entry: TarEntry): Promise<boolean> {
    const host = this.safe.host(real);
    const existing = await this.safe.lstatOrUndefined(real, entry.path);
    const keepDirectory = existing?.isDirectory() === true && entry.type === 'directory';
    if (existing && !keepDirectory) await this.remove(real);
    try {
      switch (entry.type) {
        case 'directory':
          if (!keepDirectory) await mkdir(host, 0o700);
          break;
        case 'file':
          await this.writeFile(host, real, entry);
          return true;
        case 'symlink':
          await symlink(entry.linkname ?? '', host);
          break;
        case 'hardlink':
          await link(await this.hardlinkTarget(entry), host);
          return true; // a hardlink shares its target's inode and metadata
        case 'fifo':
          await makeNode(host, 'p', entry.mode);
          break;
        case 'char':
        case 'block':
          if (!this.allow.devices) {
            this.summary.skippedDevices.push(entry.path);
            return false;
          }
          await makeNode(host, entry.type === 'char' ? 'c' : 'b', entry.mode, entry.devmajor, entry.devminor);
          break;
      }
    } catch (e) {
      throw ioError(`${this.what}: extracting "${entry.path}"`, e);
    }
    await this.setMetadata(real, entry);
    return true;
  }

  /** Writes the data and sets metadata through the descriptor: no path lookups to redirect. */
  private async writeFile(host: string, real: string[], entry: TarEntry): Promise<void> {
    // 'wx' (O_CREAT|O_EXCL) never follows a symlink that might have appeared at this name.
    const file = await open(host, 'wx', 0o600);
    try {
      for await (const chunk of entry.body) {
        const data = chunk as Buffer;
        for (let done = 0; done < data.length; ) done += (await file.write(data, done)).bytesWritten;
      }
      // chown first: it clears setuid bits, which chmod then sets.
      if (this.allow.chown) await file.chown(entry.uid, entry.gid);
      await file.chmod(entry.mode);
      await file.utimes(entry.mtime, entry.mtime);
    } finally {
      await file.close();
    }
    this.queueXattrs(real.join('/'), entry);
  }

  private async hardlinkTarget(entry: TarEntry): Promise<string> {
    const components = entryComponents(entry.linkname ?? '', this.what);
    const name = components[components.length - 1];
    const dir = name === undefined ? undefined : await this.safe.resolveDir(components.slice(0, -1), entry.path, false);
    const st = dir && name ? await this.safe.lstatOrUndefined([...dir, name], entry.path) : undefined;
    if (!dir || !name || !st) throw new BasaltError('invalid', `${this.what}: hardlink "${entry.path}" points to "${entry.linkname}", which is not in the target`);
    if (st.isDirectory()) throw this.safe.unsafe(entry.path, `it is a hardlink to the directory "${entry.linkname}"`);
    return this.safe.host([...dir, name]);
  }

  private async setMetadata(real: string[], entry: TarEntry): Promise<void> {
    const host = this.safe.host(real);
    const key = real.join('/');
    try {
      // chown first: it clears setuid bits and file capabilities, which come after.
      if (this.allow.chown) await lchown(host, entry.uid, entry.gid);
      if (entry.type !== 'symlink') await chmod(host, entry.mode);
      if (entry.type === 'directory') this.pendingDirTimes.set(key, entry.mtime);
      else await lutimes(host, entry.mtime, entry.mtime);
    } catch (e) {
      throw ioError(`${this.what}: setting metadata of "${entry.path}"`, e);
    }
    this.queueXattrs(key, entry);
  }

  /** xattrs are set in one batch at the end, after every chown (which clears capabilities). */
  private queueXattrs(key: string, entry: TarEntry): void {
    if (!entry.xattrs || entry.xattrs.size === 0) return;
    if (this.allow.xattrs) this.pendingXattrs.set(key, entry.xattrs);
    else this.summary.skippedXattrs.push(`${entry.path}: not root or setfattr missing`);
  }

  /** Opaque directory: remove every child lower layers put there, keeping this layer's. */
  private async hideLowerChildren(dir: string[]): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.safe.host(dir));
    } catch (e) {
      throw ioError(`${this.what}: reading ${dir.join('/')}`, e);
    }
    for (const name of names) {
      const child = [...dir, name];
      if (!this.written.has(child.join('/'))) await this.remove(child);
      else if ((await this.safe.lstatOrUndefined(child, name))?.isDirectory()) await this.hideLowerChildren(child);
    }
  }

  /** Removes a path (a directory with everything below) and forgets what was pending for it. */
  private async remove(real: string[]): Promise<void> {
    const key = real.join('/');
    try {
      await rm(this.safe.host(real), { recursive: true, force: true });
    } catch (e) {
      throw ioError(`${this.what}: removing ${key}`, e);
    }
    this.safe.forget(key);
    const prefix = `${key}/`;
    for (const pending of [this.pendingXattrs, this.pendingDirTimes]) {
      pending.delete(key);
      if (pending.size > 0) for (const k of pending.keys()) if (k.startsWith(prefix)) pending.delete(k);
    }
  }

  async finish(): Promise<ApplySummary> {
    const items = [...this.pendingXattrs].map(([key, xattrs]) => ({ path: this.safe.host(key === '' ? [] : key.split('/')), xattrs }));
    for (const failure of await setXattrsBatch(items)) this.summary.skippedXattrs.push(`${failure.path}: ${failure.reason}`);
    // Deepest first, so setting a child's time does not disturb its parent's afterwards.
    const dirs = [...this.pendingDirTimes].sort(([a], [b]) => b.split('/').length - a.split('/').length);
    for (const [key, mtime] of dirs) {
      try {
        await lutimes(this.safe.host(key === '' ? [] : key.split('/')), mtime, mtime);
      } catch (e) {
        throw ioError(`${this.what}: setting the time of ${key || '/'}`, e);
      }
    }
    return this.summary;
  }
}
