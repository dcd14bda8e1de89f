/**
 * Lays out directory trees from a starting sector: every directory (both trees), the
 * little- and big-endian path tables, then new file data. Unchanged files keep their
 * records, so their data is never moved or copied out of the image it lies in.
 */
import { BasaltError } from '../../oci/errors.js';
import { FLAG_DIRECTORY, SECTOR, encodeDirRecord, relocateRecord } from './format.js';
import { contentSize, jolietIdentifier, newSystemUse, primaryIdentifier, type Content, type DirNode, type IsoTree, type TreeNode } from './tree.js';

export interface LayoutOptions {
  rockRidge: boolean;
  pxLength: number;
  /** 7-byte recording date for new records. */
  date: Buffer;
  /** Data to place that no directory names (an El Torito image outside the trees). */
  extraContents?: Content[];
}

export interface TreeLayout {
  kind: IsoTree['kind'];
  rootRecord: Buffer;
  pathTableSize: number;
  lPathTableLba: number;
  mPathTableLba: number;
}

/** What to write after `startLba`, in order; `contents` are streamed after `metadata`. */
export interface Layout {
  startLba: number;
  /** Directories and path tables, whole sectors. */
  metadata: Buffer;
  contents: { content: Content; lba: number }[];
  endLba: number;
  trees: TreeLayout[];
}

interface Placed {
  lba: number;
  size: number;
}

const MAX_EXTENT = 0xffffffff - SECTOR;

function sectorsFor(bytes: number): number {
  return Math.ceil(bytes / SECTOR);
}

/** Directories in path-table order: breadth first, children in directory order. */
function breadthFirst(root: DirNode): { dir: DirNode; parent: number }[] {
  const order: { dir: DirNode; parent: number }[] = [{ dir: root, parent: 0 }];
  for (let i = 0; i < order.length; i++) {
    for (const child of (order[i] as { dir: DirNode }).dir.children) if (child.kind === 'dir') order.push({ dir: child, parent: i });
  }
  return order;
}

/** Packs records into sectors: a record never crosses a sector boundary. */
function packRecords(records: Buffer[]): Buffer {
  const sectors: Buffer[] = [];
  let current = Buffer.alloc(SECTOR);
  let used = 0;
  for (const r of records) {
    if (used + r.length > SECTOR) {
      sectors.push(current);
      current = Buffer.alloc(SECTOR);
      used = 0;
    }
    r.copy(current, used);
    used += r.length;
  }
  sectors.push(current);
  return Buffer.concat(sectors);
}

export function layoutTrees(trees: IsoTree[], startLba: number, options: LayoutOptions): Layout {
  const identifiers = new Map<TreeNode, Buffer>();
  let inode = 0x7f000000; // new Rock Ridge inode numbers, far from the ones writers assign
  const identifierOf = (tree: IsoTree, parent: DirNode, node: TreeNode): Buffer => {
    let id = identifiers.get(node);
    if (id) return id;
    const isDir = node.kind === 'dir';
    if (tree.kind === 'joliet') id = jolietIdentifier(node.name, isDir);
    else {
      const taken = new Set(parent.children.map((c) => storedIdentifier(c)?.toString('latin1').replace(/;1$/, '')).filter((s): s is string => s !== undefined));
      id = primaryIdentifier(node.name, isDir, taken);
    }
    identifiers.set(node, id);
    return id;
  };

  // Pass 1: sizes of every directory (record lengths do not depend on where things go).
  const dirPlace = new Map<DirNode, Placed>();
  const contentPlace = new Map<Content, Placed>();
  const zero: Placed = { lba: 0, size: 0 };
  const encodeDir = (tree: IsoTree, dir: DirNode, parent: DirNode): Buffer => {
    const self = dirPlace.get(dir) ?? zero;
    const up = dirPlace.get(parent) ?? zero;
    const records: Buffer[] = [
      dir.selfRecord ? relocateRecord(dir.selfRecord, self.lba, self.size) : encodeDirRecord({ extent: self.lba, size: self.size, flags: FLAG_DIRECTORY, identifier: Buffer.from([0]), date: options.date }),
      dir.parentRecord ? relocateRecord(dir.parentRecord, up.lba, up.size) : encodeDirRecord({ extent: up.lba, size: up.size, flags: FLAG_DIRECTORY, identifier: Buffer.from([1]), date: options.date }),
    ];
    for (const child of dir.children) {
      if (child.kind === 'dir') {
        const p = dirPlace.get(child) ?? zero;
        records.push(
          child.listingRecord
            ? relocateRecord(child.listingRecord, p.lba, p.size)
            : encodeDirRecord({ extent: p.lba, size: p.size, flags: FLAG_DIRECTORY, identifier: identifierOf(tree, dir, child), date: options.date, systemUse: newSystemUse(tree.kind, options.rockRidge, options.pxLength, child.name, true, inode++) }),
        );
      } else if (child.content) {
        const p = contentPlace.get(child.content) ?? zero;
        const first = child.records?.[0];
        if (first) {
          const rec = relocateRecord(first, p.lba, p.size);
          rec[25] = (rec[25] as number) & ~0x80; // one extent now
          records.push(rec);
        } else {
          records.push(encodeDirRecord({ extent: p.lba, size: p.size, flags: 0, identifier: identifierOf(tree, dir, child), date: options.date, systemUse: newSystemUse(tree.kind, options.rockRidge, options.pxLength, child.name, false, inode++) }));
        }
      } else records.push(...(child.records ?? []));
    }
    return packRecords(records);
  };

  const orders = trees.map((t) => ({ tree: t, order: breadthFirst(t.root) }));
  let lba = startLba;
  for (const { tree, order } of orders) {
    for (const { dir, parent } of order) {
      const size = encodeDir(tree, dir, (order[parent] as { dir: DirNode }).dir).length;
      dirPlace.set(dir, { lba, size });
      lba += sectorsFor(size);
    }
  }
  const pathTables = orders.map(({ tree, order }) => {
    const ids = order.map(({ dir, parent }, i) => (i === 0 ? Buffer.from([0]) : storedIdentifier(dir) ?? identifierOf(tree, (order[parent] as { dir: DirNode }).dir, dir)));
    const size = ids.reduce((sum, id) => sum + 8 + id.length + (id.length % 2), 0);
    const placed = { lPathTableLba: lba, mPathTableLba: lba + sectorsFor(size), size };
    lba += 2 * sectorsFor(size);
    return { ...placed, ids };
  });
  const metadataEnd = lba;
  const contents: { content: Content; lba: number }[] = [];
  for (const { order } of orders) {
    for (const { dir } of order) {
      for (const child of dir.children) {
        if (child.kind !== 'file' || !child.content || contentPlace.has(child.content)) continue;
        const size = contentSize(child.content);
        if (size > MAX_EXTENT) throw new BasaltError('unsupported', `${child.name} is ${size} bytes; files over 4 GiB need multi-extent records, which basalt does not write`);
        contentPlace.set(child.content, { lba: size === 0 ? 0 : lba, size });
        if (size > 0) contents.push({ content: child.content, lba });
        lba += sectorsFor(size);
      }
    }
  }
  for (const content of options.extraContents ?? []) {
    if (contentPlace.has(content)) continue;
    contentPlace.set(content, { lba, size: contentSize(content) });
    contents.push({ content, lba });
    lba += sectorsFor(contentSize(content));
  }

  // Pass 2: encode with every place known.
  const metadata: Buffer[] = [];
  for (const { tree, order } of orders) {
    for (const { dir, parent } of order) metadata.push(encodeDir(tree, dir, (order[parent] as { dir: DirNode }).dir));
  }
  const treeLayouts: TreeLayout[] = orders.map(({ tree, order }, t) => {
    const pt = pathTables[t] as (typeof pathTables)[number];
    const l: Buffer[] = [];
    const m: Buffer[] = [];
    order.forEach(({ dir, parent }, i) => {
      const id = pt.ids[i] as Buffer;
      const place = dirPlace.get(dir) as Placed;
      const rec = Buffer.alloc(8 + id.length + (id.length % 2));
      rec[0] = id.length;
      id.copy(rec, 8);
      const lrec = Buffer.from(rec);
      lrec.writeUInt32LE(place.lba, 2);
      lrec.writeUInt16LE(parent + 1, 6);
      rec.writeUInt32BE(place.lba, 2);
      rec.writeUInt16BE(parent + 1, 6);
      l.push(lrec);
      m.push(rec);
    });
    const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc(sectorsFor(b.length) * SECTOR - b.length)]);
    metadata.push(pad(Buffer.concat(l)), pad(Buffer.concat(m)));
    const root = order[0]?.dir as DirNode;
    const rootPlace = dirPlace.get(root) as Placed;
    const rootRecord = root.selfRecord
      ? relocateRecord(root.selfRecord.subarray(0, 34), rootPlace.lba, rootPlace.size)
      : encodeDirRecord({ extent: rootPlace.lba, size: rootPlace.size, flags: FLAG_DIRECTORY, identifier: Buffer.from([0]), date: options.date });
    rootRecord[0] = 34; // the descriptor's copy carries no System Use
    return { kind: tree.kind, rootRecord, pathTableSize: pt.size, lPathTableLba: pt.lPathTableLba, mPathTableLba: pt.mPathTableLba };
  });
  const meta = Buffer.concat(metadata);
  // Directory sizes cannot change between the passes; this guards that reasoning.
  if (meta.length !== (metadataEnd - startLba) * SECTOR) throw new Error('ISO layout: directories changed size between passes');
  return { startLba, metadata: meta, contents, endLba: lba, trees: treeLayouts };
}

function storedIdentifier(node: TreeNode): Buffer | undefined {
  const raw = node.kind === 'dir' ? node.listingRecord : node.records?.[0];
  if (!raw) return undefined;
  return raw.subarray(33, 33 + (raw[32] as number));
}
