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
import { createHash, type Hash } from 'node:crypto';
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

export class IsoMd5Hasher {
  private readonly hash: Hash = createHash('md5');
  private readonly checkpoints: number[];
  private hashed = 0;
  private fragments = '';

  /** `volumeBytes`: the volume space size of the image being written, in bytes. */
  constructor(readonly volumeBytes: number) {
    this.checkpoints = fragmentCheckpoints(Math.max(0, volumeBytes - SKIP_SECTORS * SECTOR));
  }

  get total(): number {
    return Math.max(0, this.volumeBytes - SKIP_SECTORS * SECTOR);
  }

  /** Feeds the next bytes of the image, in order from byte 0. */
  update(chunk: Uint8Array): void {
    let data = chunk;
    while (data.length > 0 && this.hashed < this.total) {
      const next = this.checkpoints[0] ?? this.total;
      const take = Math.min(data.length, next - this.hashed, this.total - this.hashed);
      this.hash.update(data.subarray(0, take));
      this.hashed += take;
      data = data.subarray(take);
      if (this.hashed === next && this.checkpoints.length > 0) {
        this.checkpoints.shift();
        const digest = this.hash.copy().digest();
        for (let i = 0; i < FRAGMENT_DIGITS; i++) this.fragments += (digest[i] as number).toString(16)[0];
      }
    }
  }

  /** The 512-byte application-use area to implant at PVD offset 883. */
  applicationUse(supported = false): Buffer {
    if (this.hashed !== this.total) throw new Error(`isomd5sum: ${this.hashed} of ${this.total} bytes were hashed`);
    const sum = this.hash.digest('hex');
    const text = `ISO MD5SUM = ${sum};SKIPSECTORS = ${SKIP_SECTORS};RHLISOSTATUS=${supported ? 1 : 0};FRAGMENT SUMS = ${this.fragments};FRAGMENT COUNT = ${FRAGMENT_COUNT};THIS IS NOT THE SAME AS RUNNING MD5SUM ON THIS ISO!!`;
    const area = Buffer.alloc(APPLICATION_USE_SIZE, 0x20);
    area.write(text, 'latin1');
    return area;
  }
}

/** Byte offset of the application-use area of the PVD at `pvdSector`. */
export function applicationUseOffset(pvdSector: number): number {
  return pvdSector * SECTOR + PVD.applicationUse;
}
