/**
 * The isomd5sum checksum (what implantisomd5 writes and checkisomd5 and anaconda's media
 * check verify), computed while the image is written instead of in a second pass.
 *
 * The sum covers the image up to the volume space size minus the last 15 sectors, with the
 * 512-byte application-use area of the primary volume descriptor read as spaces. Twenty
 * fragment sums (first hex digit of the first three bytes of the running MD5) are taken at
 * the end of the first 32 KiB read whose start falls in the next twentyfirst of the data,
 * the read size both tools use.
 */
import { Worker } from 'node:worker_threads';
import { PVD, SECTOR } from './format.js';

export const SKIP_SECTORS = 15;
const FRAGMENT_COUNT = 20;
const FRAGMENT_DIGITS = 3;
const READ_SIZE = 16 * SECTOR;
export const APPLICATION_USE_SIZE = 512;

/** Positions (bytes hashed) after which a fragment sum is taken. */
function fragmentCheckpoints(total: number): number[] {
  const points: number[] = [];
  let previous = 0;
  for (let start = 0; start < total; start += READ_SIZE) {
    const fragment = Math.floor((start * (FRAGMENT_COUNT + 1)) / total);
    if (fragment !== previous) {
      points.push(Math.min(start + READ_SIZE, total));
      previous = fragment;
    }
  }
  return points;
}

/**
 * MD5 runs on a worker thread so that hashing overlaps the reads and writes of the main
 * thread (one pass at the speed of the slower of the two, not their sum). Eval'd source
 * keeps it inside the single-file bundle. Each batch is acknowledged, and at most
 * IN_FLIGHT batches wait, so memory stays bounded whatever the image size.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const { total, checkpoints, digits } = workerData;
const hash = createHash('md5');
let hashed = 0, next = 0, fragments = '';
function feed(data) {
  while (data.length > 0 && hashed < total) {
    const stop = next < checkpoints.length ? checkpoints[next] : total;
    const take = Math.min(data.length, stop - hashed);
    hash.update(data.subarray(0, take));
    hashed += take;
    data = data.subarray(take);
    if (next < checkpoints.length && hashed === checkpoints[next]) {
      next++;
      const d = hash.copy().digest();
      for (let i = 0; i < digits; i++) fragments += d[i].toString(16)[0];
    }
  }
}
// A range of a file read here, with patches laid over it: the bytes the main thread copies
// in the kernel (copy_file_range) without ever seeing them.
function feedFile(m) {
  const fd = fs.openSync(m.file, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    for (let pos = m.start, end = m.start + m.length; pos < end; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
      if (n <= 0) throw new Error(m.file + ' ended at byte ' + pos);
      const chunk = buf.subarray(0, n);
      for (const p of m.patches) {
        const from = Math.max(pos, p.offset), to = Math.min(pos + n, p.offset + p.data.length);
        if (from < to) chunk.set(p.data.subarray(from - p.offset, to - p.offset), from - pos);
      }
      feed(chunk);
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}
parentPort.on('message', (m) => {
  if (m.file) feedFile(m);
  else if (m.buffer) feed(new Uint8Array(m.buffer, 0, m.length));
  if (!m.end) parentPort.postMessage({ ack: true });
  else parentPort.postMessage({ hashed, sum: hash.digest('hex'), fragments });
});
`;
const IN_FLIGHT = 4;

export class IsoMd5Hasher {
  private readonly worker: Worker;
  private inFlight = 0;
  private wake: (() => void) | undefined;
  private result: Promise<{ hashed: number; sum: string; fragments: string }>;
  private failure: Error | undefined;

  /** `volumeBytes`: the volume space size of the image being written, in bytes. */
  constructor(readonly volumeBytes: number) {
    const total = this.total;
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { total, checkpoints: fragmentCheckpoints(total), digits: FRAGMENT_DIGITS } });
    this.result = new Promise((resolve, reject) => {
      this.worker.on('message', (m: { ack?: boolean; hashed: number; sum: string; fragments: string }) => {
        if (m.ack) {
          this.inFlight--;
          this.wake?.();
        } else resolve(m);
      });
      this.worker.on('error', (e) => {
        this.failure = e;
        this.wake?.();
        reject(e);
      });
    });
    this.result.catch(() => undefined);
  }

  get total(): number {
    return Math.max(0, this.volumeBytes - SKIP_SECTORS * SECTOR);
  }

  /** Feeds the next bytes of the image, in order from byte 0 (copied: `chunk` may be reused). */
  async update(chunk: Uint8Array): Promise<void> {
    while (this.inFlight >= IN_FLIGHT && !this.failure) await new Promise<void>((r) => (this.wake = r));
    if (this.failure) throw this.failure;
    const copy = new Uint8Array(new ArrayBuffer(chunk.length));
    copy.set(chunk);
    this.inFlight++;
    this.worker.postMessage({ buffer: copy.buffer, length: copy.length }, [copy.buffer]);
  }

  /**
   * Hashes `length` bytes of `file` from `start` as the next bytes of the image, with
   * `patches` (offsets relative to the file) laid over them, read on the worker thread.
   */
  async updateFromFile(file: string, start: number, length: number, patches: readonly { offset: number; data: Buffer }[]): Promise<void> {
    while (this.inFlight >= IN_FLIGHT && !this.failure) await new Promise<void>((r) => (this.wake = r));
    if (this.failure) throw this.failure;
    this.inFlight++;
    this.worker.postMessage({ file, start, length, patches: patches.map((p) => ({ offset: p.offset, data: new Uint8Array(p.data) })) });
  }

  /** Resolves when the worker has taken in everything sent so far. */
  async drained(): Promise<void> {
    while (this.inFlight > 0 && !this.failure) await new Promise<void>((r) => (this.wake = r));
    if (this.failure) throw this.failure;
  }

  /** The 512-byte application-use area to implant at PVD offset 883. */
  async applicationUse(supported = false): Promise<Buffer> {
    this.worker.postMessage({ end: true });
    try {
      const { hashed, sum, fragments } = await this.result;
      if (hashed !== this.total) throw new Error(`isomd5sum: ${hashed} of ${this.total} bytes were hashed`);
      const text = `ISO MD5SUM = ${sum};SKIPSECTORS = ${SKIP_SECTORS};RHLISOSTATUS=${supported ? 1 : 0};FRAGMENT SUMS = ${fragments};FRAGMENT COUNT = ${FRAGMENT_COUNT};THIS IS NOT THE SAME AS RUNNING MD5SUM ON THIS ISO!!`;
      const area = Buffer.alloc(APPLICATION_USE_SIZE, 0x20);
      area.write(text, 'latin1');
      return area;
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** Byte offset of the application-use area of the PVD at `pvdSector`. */
export function applicationUseOffset(pvdSector: number): number {
  return pvdSector * SECTOR + PVD.applicationUse;
}
