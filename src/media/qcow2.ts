/**
 * Raw disk image → qcow2 version 3 (QEMU's interop/qcow2 specification), 64 KiB clusters,
 * no compression, no backing file. All-zero clusters are left unallocated (they read as
 * zeros), so a sparse raw disk gives a small qcow2.
 *
 * One pass over the raw image: data clusters are appended as they are found, right after
 * the header and the L1 table (whose size depends only on the virtual size); L2 tables,
 * refcount blocks and the refcount table follow the data; the header, which points at all
 * of them, is written last. Every cluster is referenced exactly once, so every refcount
 * is 1 and every L1/L2 entry carries the COPIED flag.
 */
import type { FileHandle } from 'node:fs/promises';
import { openForReading } from '../oci/fsutil.js';
import { isAllZero, writeFully } from './sparse-copy.js';

const CLUSTER_BITS = 16;
const CLUSTER = 1 << CLUSTER_BITS; // 64 KiB
const L2_ENTRIES = CLUSTER / 8;
const REFCOUNT_ORDER = 4; // 16-bit refcounts
const REFCOUNTS_PER_BLOCK = (CLUSTER * 8) / (1 << REFCOUNT_ORDER);
const HEADER_LENGTH = 104;
const COPIED = 1n << 63n;
const READ_CHUNK = 64 * CLUSTER; // 4 MiB reads

const clustersFor = (bytes: number): number => Math.ceil(bytes / CLUSTER);

function qcow2Header(virtualSize: number, l1Size: number, l1Offset: number, refcountTableOffset: number, refcountTableClusters: number): Buffer {
  const h = Buffer.alloc(CLUSTER);
  h.write('QFI\xfb', 0, 'latin1');
  h.writeUInt32BE(3, 4);
  // 8..19: no backing file
  h.writeUInt32BE(CLUSTER_BITS, 20);
  h.writeBigUInt64BE(BigInt(virtualSize), 24);
  // 32: crypt_method 0
  h.writeUInt32BE(l1Size, 36);
  h.writeBigUInt64BE(BigInt(l1Offset), 40);
  h.writeBigUInt64BE(BigInt(refcountTableOffset), 48);
  h.writeUInt32BE(refcountTableClusters, 56);
  // 60..71: no snapshots; 72..95: no feature bits
  h.writeUInt32BE(REFCOUNT_ORDER, 96);
  h.writeUInt32BE(HEADER_LENGTH, 100);
  // The end-of-extensions marker (type 0, length 0) at HEADER_LENGTH is already zeros.
  return h;
}

/** Gathers data clusters into large sequential writes. */
class ClusterWriter {
  private pending: Buffer[] = [];
  private pendingStart: number;
  constructor(private readonly out: FileHandle, public next: number) {
    this.pendingStart = next;
  }
  async append(data: Buffer): Promise<number> {
    const at = this.next;
    this.pending.push(Buffer.from(data)); // copy: the caller reuses its read buffer
    this.next += CLUSTER;
    if (this.next - this.pendingStart >= READ_CHUNK) await this.flush();
    return at;
  }
  async flush(): Promise<void> {
    if (this.pending.length) await writeFully(this.out, Buffer.concat(this.pending), this.pendingStart);
    this.pending = [];
    this.pendingStart = this.next;
  }
}

export interface Qcow2Stats {
  virtualSize: number;
  dataClusters: number;
  fileSize: number;
}

/** Converts the raw image at `rawPath` into `out`, an open, empty file. */
export async function writeQcow2(rawPath: string, out: FileHandle): Promise<Qcow2Stats> {
  const raw = await openForReading(rawPath);
  try {
    const virtualSize = (await raw.stat()).size;
    const guestClusters = clustersFor(virtualSize);
    const l1Size = Math.max(1, Math.ceil(guestClusters / L2_ENTRIES));
    const l1Offset = CLUSTER;
    const l1Clusters = clustersFor(l1Size * 8);
    const l2Tables = new Map<number, Buffer>();
    const writer = new ClusterWriter(out, l1Offset + l1Clusters * CLUSTER);

    const chunk = Buffer.alloc(READ_CHUNK);
    let dataClusters = 0;
    for (let pos = 0; pos < virtualSize; pos += READ_CHUNK) {
      const { bytesRead } = await raw.read(chunk, 0, Math.min(READ_CHUNK, virtualSize - pos), pos);
      if (bytesRead > 0 && isAllZero(chunk.subarray(0, bytesRead))) continue;
      for (let at = 0; at < bytesRead; at += CLUSTER) {
        let cluster = chunk.subarray(at, Math.min(at + CLUSTER, bytesRead));
        if (isAllZero(cluster)) continue;
        if (cluster.length < CLUSTER) cluster = Buffer.concat([cluster, Buffer.alloc(CLUSTER - cluster.length)]); // last partial cluster
        const guestCluster = (pos + at) / CLUSTER;
        const l1Index = Math.floor(guestCluster / L2_ENTRIES);
        let l2 = l2Tables.get(l1Index);
        if (!l2) l2Tables.set(l1Index, (l2 = Buffer.alloc(CLUSTER)));
        const hostOffset = await writer.append(cluster);
        l2.writeBigUInt64BE(BigInt(hostOffset) | COPIED, (guestCluster % L2_ENTRIES) * 8);
        dataClusters++;
      }
    }
    await writer.flush();

    // L2 tables after the data, in guest order, then the L1 table pointing at them.
    const l1 = Buffer.alloc(l1Clusters * CLUSTER);
    let offset = writer.next;
    for (const index of [...l2Tables.keys()].sort((a, b) => a - b)) {
      await writeFully(out, l2Tables.get(index) as Buffer, offset);
      l1.writeBigUInt64BE(BigInt(offset) | COPIED, index * 8);
      offset += CLUSTER;
    }
    await writeFully(out, l1, l1Offset);

    // Refcount blocks and table cover every cluster including themselves: iterate to a fixed point.
    const before = offset / CLUSTER;
    let blocks = 0;
    let tableClusters = 0;
    for (;;) {
      const total = before + blocks + tableClusters;
      const needBlocks = Math.ceil(total / REFCOUNTS_PER_BLOCK);
      const needTable = clustersFor(needBlocks * 8);
      if (needBlocks === blocks && needTable === tableClusters) break;
      blocks = needBlocks;
      tableClusters = needTable;
    }
    const totalClusters = before + blocks + tableClusters;
    const table = Buffer.alloc(tableClusters * CLUSTER);
    for (let b = 0; b < blocks; b++) {
      const block = Buffer.alloc(CLUSTER);
      const first = b * REFCOUNTS_PER_BLOCK;
      for (let c = first; c < Math.min(totalClusters, first + REFCOUNTS_PER_BLOCK); c++) block.writeUInt16BE(1, (c - first) * 2);
      const blockOffset = offset + b * CLUSTER;
      await writeFully(out, block, blockOffset);
      table.writeBigUInt64BE(BigInt(blockOffset), b * 8);
    }
    const tableOffset = offset + blocks * CLUSTER;
    await writeFully(out, table, tableOffset);
    await writeFully(out, qcow2Header(virtualSize, l1Size, l1Offset, tableOffset, tableClusters), 0);
    return { virtualSize, dataClusters, fileSize: totalClusters * CLUSTER };
  } finally {
    await raw.close();
  }
}
