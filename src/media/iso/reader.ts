/**
 * Reads an ISO 9660 image in place: volume descriptors, the primary tree with Rock Ridge
 * names, the Joliet tree, the El Torito catalog and the hybrid MBR/GPT. Nothing is
 * extracted; file data is read on demand by extent.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { BasaltError, ioError } from '../../oci/errors.js';
import {
  FLAG_DIRECTORY, FLAG_MULTI_EXTENT, PVD, SECTOR, SYSTEM_AREA_SECTORS, VD_BOOT, VD_PRIMARY, VD_SUPPLEMENTARY, VD_TERMINATOR,
  decodeVolumeDate, isoText, jolietName, parseDirectory, plainName, type DirRecord,
} from './format.js';
import { continuation, parseSusp, rockRidgeInfo, type SuspEntry } from './rockridge.js';
import { catalogLbaFromBootRecord, parseBootCatalog, type BootCatalog } from './eltorito.js';
import { readHybridLayout, type HybridLayout } from './hybrid.js';

export type TreeKind = 'primary' | 'joliet';

export interface IsoEntry {
  name: string;
  record: DirRecord;
  isDirectory: boolean;
  mode?: number;
  symlink?: string;
  /** Rock Ridge relocation entries (RE, CL, PL) are present. */
  relocated?: boolean;
}

export interface VolumeDescriptor {
  type: number;
  sector: number;
  raw: Buffer;
}

export interface IsoVolumeInfo {
  volumeId: string;
  systemId: string;
  volumeSpaceSize: number;
  creationDate?: string;
  modificationDate?: string;
  rockRidge: boolean;
  joliet: boolean;
  md5Implanted: boolean;
}

/** Directories deeper than this, or more of them, mean a corrupt or hostile image. */
const MAX_DEPTH = 64;
const MAX_DIR_BYTES = 64 * 1024 * 1024;

export class IsoImage {
  readonly descriptors: VolumeDescriptor[];
  readonly primary: Buffer;
  readonly joliet: Buffer | undefined;
  readonly rockRidge: boolean;
  /** Bytes skipped at the start of each System Use area (SP entry; 0 in practice). */
  readonly suspSkip: number;
  /** Length of this volume's PX entries (36: RRIP 1.10, 44: RRIP 1.12). */
  readonly pxLength: number;
  readonly catalog: BootCatalog | undefined;
  readonly catalogSector: Buffer | undefined;
  readonly systemArea: Buffer;
  readonly hybrid: HybridLayout;

  private constructor(
    readonly path: string,
    readonly fh: FileHandle,
    readonly fileSize: number,
    init: {
      descriptors: VolumeDescriptor[]; primary: Buffer; joliet: Buffer | undefined; rockRidge: boolean; suspSkip: number; pxLength: number;
      catalog: BootCatalog | undefined; catalogSector: Buffer | undefined; systemArea: Buffer;
    },
  ) {
    this.descriptors = init.descriptors;
    this.primary = init.primary;
    this.joliet = init.joliet;
    this.rockRidge = init.rockRidge;
    this.suspSkip = init.suspSkip;
    this.pxLength = init.pxLength;
    this.catalog = init.catalog;
    this.catalogSector = init.catalogSector;
    this.systemArea = init.systemArea;
    this.hybrid = readHybridLayout(init.systemArea);
  }

  static async open(path: string): Promise<IsoImage> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw ioError(`opening ${path}`, e);
    }
    try {
      return await IsoImage.parse(path, fh);
    } catch (e) {
      await fh.close();
      if (e instanceof RangeError) throw new BasaltError('invalid', `${path}: ${e.message}`, { hint: 'check that the file is a complete ISO 9660 image' });
      throw e;
    }
  }

  private static async parse(path: string, fh: FileHandle): Promise<IsoImage> {
    const fileSize = (await fh.stat()).size;
    const notIso = () => new BasaltError('invalid', `${path} is not an ISO 9660 image (no volume descriptors at 32 KiB)`, { hint: 'give an installer ISO such as one made by xorriso, genisoimage or grub-mkrescue' });
    if (fileSize < (SYSTEM_AREA_SECTORS + 2) * SECTOR) throw notIso();
    const systemArea = await readExactly(fh, 0, SYSTEM_AREA_SECTORS * SECTOR, path);
    const descriptors: VolumeDescriptor[] = [];
    for (let sector = SYSTEM_AREA_SECTORS; sector < SYSTEM_AREA_SECTORS + 64; sector++) {
      const raw = await readExactly(fh, sector * SECTOR, SECTOR, path);
      if (raw.toString('latin1', 1, 6) !== 'CD001') {
        if (descriptors.length === 0) throw notIso();
        throw new RangeError(`volume descriptor at sector ${sector} has no CD001 signature`);
      }
      if (raw[0] === VD_TERMINATOR) break;
      descriptors.push({ type: raw[0] as number, sector, raw });
    }
    const primary = descriptors.find((d) => d.type === VD_PRIMARY)?.raw;
    if (!primary) throw new BasaltError('invalid', `${path} has no primary volume descriptor`);
    const volumeBytes = primary.readUInt32LE(PVD.volumeSpaceSize) * SECTOR;
    if (fileSize < volumeBytes)
      throw new BasaltError('integrity', `${path} is truncated: its volume descriptor says ${volumeBytes} bytes, the file has ${fileSize}`, { hint: 'download or copy the ISO again' });
    // Joliet: a supplementary descriptor with a UCS-2 escape sequence (%/@, %/C or %/E).
    const joliet = descriptors.find((d) => d.type === VD_SUPPLEMENTARY && d.raw[PVD.escapes] === 0x25 && d.raw[PVD.escapes + 1] === 0x2f)?.raw;

    // Rock Ridge announces itself with SP (and ER) in the root directory's "." record.
    const rootRecord = parseDirectory(Buffer.from(primary.subarray(PVD.rootRecord, PVD.rootRecord + 34)))[0];
    if (!rootRecord) throw new RangeError('the primary volume descriptor has no root directory record');
    const rootData = await readExactly(fh, rootRecord.extent * SECTOR, Math.min(SECTOR, rootRecord.size), path);
    const dot = parseDirectory(rootData)[0];
    let rockRidge = false;
    let suspSkip = 0;
    let pxLength = 36;
    if (dot) {
      const entries = parseSusp(dot.systemUse);
      const sp = entries.find((e) => e.signature === 'SP');
      if (sp && sp.data[0] === 0xbe && sp.data[1] === 0xef) {
        suspSkip = sp.data[2] as number;
        rockRidge = true;
        const px = entries.find((e) => e.signature === 'PX');
        if (px) pxLength = px.data.length + 4;
      }
    }

    let catalog: BootCatalog | undefined;
    let catalogSector: Buffer | undefined;
    const boot = descriptors.find((d) => d.type === VD_BOOT);
    const catalogLba = boot ? catalogLbaFromBootRecord(boot.raw) : undefined;
    if (catalogLba !== undefined) {
      catalogSector = await readExactly(fh, catalogLba * SECTOR, SECTOR, path);
      catalog = parseBootCatalog(catalogSector, catalogLba);
    }
    return new IsoImage(path, fh, fileSize, { descriptors, primary, joliet, rockRidge, suspSkip, pxLength, catalog, catalogSector, systemArea });
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  info(): IsoVolumeInfo {
    const p = this.primary;
    const app = p.toString('latin1', PVD.applicationUse, PVD.applicationUse + 512);
    const creationDate = decodeVolumeDate(p, PVD.creationDate);
    const modificationDate = decodeVolumeDate(p, PVD.modificationDate);
    return {
      volumeId: isoText(p, PVD.volumeId, 32),
      systemId: isoText(p, PVD.systemId, 32),
      volumeSpaceSize: p.readUInt32LE(PVD.volumeSpaceSize),
      ...(creationDate ? { creationDate } : {}),
      ...(modificationDate ? { modificationDate } : {}),
      rockRidge: this.rockRidge,
      joliet: this.joliet !== undefined,
      md5Implanted: app.startsWith('ISO MD5SUM = '),
    };
  }

  rootRecord(tree: TreeKind): DirRecord {
    const vd = tree === 'joliet' ? this.joliet : this.primary;
    if (!vd) throw new BasaltError('not-found', `${this.path} has no Joliet tree`);
    const record = parseDirectory(Buffer.from(vd.subarray(PVD.rootRecord, PVD.rootRecord + 34)))[0];
    if (!record) throw new RangeError('the volume descriptor has no root directory record');
    return record;
  }

  async readExtent(extent: number, size: number): Promise<Buffer> {
    if (extent * SECTOR + size > this.fileSize) throw new BasaltError('integrity', `${this.path} is truncated: data at sector ${extent} (${size} bytes) lies past its end`, { hint: 'download or copy the ISO again' });
    return readExactly(this.fh, extent * SECTOR, size, this.path);
  }

  /** The entries of a directory ("." and ".." left out), with Rock Ridge or Joliet names. */
  async list(dir: DirRecord, tree: TreeKind): Promise<IsoEntry[]> {
    if (dir.size > MAX_DIR_BYTES) throw new RangeError(`a directory of ${dir.size} bytes at sector ${dir.extent} is implausibly large`);
    const records = parseDirectory(await this.readExtent(dir.extent, dir.size));
    const entries: IsoEntry[] = [];
    for (const record of records) {
      if (record.identifier.length === 1 && (record.identifier[0] === 0 || record.identifier[0] === 1)) continue;
      const isDirectory = (record.flags & FLAG_DIRECTORY) !== 0;
      if (tree === 'joliet') {
        entries.push({ name: jolietName(record.identifier), record, isDirectory });
        continue;
      }
      const rr = this.rockRidge ? rockRidgeInfo(await this.suspEntries(record)) : { relocated: false };
      entries.push({
        name: rr.name ?? plainName(record.identifier),
        record,
        isDirectory,
        ...(rr.mode !== undefined ? { mode: rr.mode } : {}),
        ...(rr.symlink !== undefined ? { symlink: rr.symlink } : {}),
        ...(rr.relocated ? { relocated: true } : {}),
      });
    }
    // Multi-extent files come as several records under one name: the parts are concatenated.
    return mergeMultiExtent(entries);
  }

  /** The SUSP entries of a record, following continuation areas. */
  async suspEntries(record: DirRecord): Promise<SuspEntry[]> {
    let entries = parseSusp(record.systemUse.subarray(this.suspSkip));
    const all: SuspEntry[] = [];
    for (let hops = 0; hops < 16; hops++) {
      all.push(...entries.filter((e) => e.signature !== 'CE'));
      const ce = entries.find((e) => e.signature === 'CE');
      if (!ce) return all;
      const c = continuation(ce);
      const area = await this.readExtent(c.block, c.offset + c.length);
      entries = parseSusp(area.subarray(c.offset));
    }
    throw new RangeError(`Rock Ridge continuation areas of ${record.identifier.toString('latin1')} form a loop`);
  }

  /** Finds `path` ("/a/b") in a tree; undefined when it does not exist. Names compare exactly, then case-insensitively. */
  async lookup(path: string, tree: TreeKind = 'primary'): Promise<IsoEntry | undefined> {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    let current: IsoEntry = { name: '/', record: this.rootRecord(tree), isDirectory: true };
    for (const part of parts.slice(0, MAX_DEPTH)) {
      if (!current.isDirectory) return undefined;
      const entries = await this.list(current.record, tree);
      const next = entries.find((e) => e.name === part) ?? entries.find((e) => e.name.toLowerCase() === part.toLowerCase());
      if (!next) return undefined;
      current = next;
    }
    return current;
  }

  /** Visits every entry under `dir` depth first; `fn` gets the path relative to the root. */
  async walk(tree: TreeKind, fn: (path: string, entry: IsoEntry) => Promise<void> | void, dir?: IsoEntry, prefix = '', depth = 0): Promise<void> {
    if (depth > MAX_DEPTH) throw new RangeError(`directories nest deeper than ${MAX_DEPTH} levels at ${prefix}`);
    const start = dir ?? { name: '/', record: this.rootRecord(tree), isDirectory: true };
    for (const entry of await this.list(start.record, tree)) {
      const path = `${prefix}/${entry.name}`;
      await fn(path, entry);
      if (entry.isDirectory) await this.walk(tree, fn, entry, path, depth + 1);
    }
  }

  async readFile(entry: IsoEntry): Promise<Buffer> {
    const parts = extentsOf(entry);
    return Buffer.concat(await Promise.all(parts.map((p) => this.readExtent(p.extent, p.size))));
  }
}

/** The extents holding an entry's data, in order (more than one for multi-extent files). */
export function extentsOf(entry: IsoEntry): { extent: number; size: number }[] {
  const parts = (entry as IsoEntry & { parts?: DirRecord[] }).parts ?? [entry.record];
  return parts.map((r) => ({ extent: r.extent, size: r.size }));
}

export function entrySize(entry: IsoEntry): number {
  return extentsOf(entry).reduce((sum, p) => sum + p.size, 0);
}

function mergeMultiExtent(entries: IsoEntry[]): IsoEntry[] {
  const out: IsoEntry[] = [];
  let pending: (IsoEntry & { parts: DirRecord[] }) | undefined;
  for (const e of entries) {
    if (pending && pending.name === e.name) {
      pending.parts.push(e.record);
      if (!(e.record.flags & FLAG_MULTI_EXTENT)) pending = undefined;
      continue;
    }
    pending = undefined;
    if (e.record.flags & FLAG_MULTI_EXTENT) {
      pending = { ...e, parts: [e.record] };
      out.push(pending);
    } else out.push(e);
  }
  return out;
}

async function readExactly(fh: FileHandle, position: number, length: number, path: string): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new BasaltError('integrity', `${path} is truncated: it ends before byte ${position + length}`, { hint: 'download or copy the ISO again' });
    done += bytesRead;
  }
  return buf;
}
