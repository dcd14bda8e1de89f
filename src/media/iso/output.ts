/**
 * Streams the pieces of an image to its output in order: ranges of another image (with
 * small patches laid over them), buffers, local files and zeros, padded to whole sectors
 * where asked, handed to the isomd5sum hasher on the way. Reads run one chunk ahead of
 * writes; the hashing itself happens on the hasher's worker thread.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { BasaltError, ioError } from '../../oci/errors.js';
import { SECTOR } from './format.js';
import type { IsoMd5Hasher } from './isomd5.js';

export type Piece =
  | { kind: 'input'; fh: FileHandle; start: number; length: number }
  | { kind: 'buffer'; data: Buffer }
  | { kind: 'file'; path: string; size: number }
  | { kind: 'zeros'; length: number };

/** Bytes laid over the output at an absolute offset (descriptors, system area, EFI image). */
export interface Patch {
  offset: number;
  data: Buffer;
}

const CHUNK = 4 * 1024 * 1024;

export class ImageSink {
  private position = 0;
  private pendingWrite: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly out: FileHandle,
    private readonly patches: Patch[],
    private readonly hasher: IsoMd5Hasher | undefined,
    /** Where the first pushed byte lands (the bytes before it are already in place). */
    start = 0,
  ) {
    this.position = start;
  }

  get offset(): number {
    return this.position;
  }

  /** Takes ownership of `chunk` (it must not be reused until the write is awaited). */
  private async push(chunk: Buffer): Promise<void> {
    const start = this.position;
    for (const p of this.patches) {
      const from = Math.max(start, p.offset);
      const to = Math.min(start + chunk.length, p.offset + p.data.length);
      if (from < to) p.data.copy(chunk, from - start, from - p.offset, to - p.offset);
    }
    await this.hasher?.update(chunk);
    await this.pendingWrite;
    this.pendingWrite = writeAll(this.out, chunk, start);
    this.position += chunk.length;
  }

  async write(piece: Piece): Promise<void> {
    switch (piece.kind) {
      case 'buffer':
        await this.push(Buffer.from(piece.data));
        return;
      case 'zeros':
        for (let left = piece.length; left > 0; left -= CHUNK) await this.push(Buffer.alloc(Math.min(left, CHUNK)));
        return;
      case 'input':
        await this.copyFrom(piece.fh, piece.start, piece.length, 'the input ISO');
        return;
      case 'file': {
        let fh: FileHandle;
        try {
          fh = await open(piece.path, 'r');
        } catch (e) {
          throw ioError(`reading ${piece.path}`, e);
        }
        try {
          await this.copyFrom(fh, 0, piece.size, piece.path);
        } finally {
          await fh.close();
        }
        return;
      }
    }
  }

  /** Pads with zeros to the next sector boundary. */
  async alignToSector(): Promise<void> {
    const rest = this.position % SECTOR;
    if (rest) await this.push(Buffer.alloc(SECTOR - rest));
  }

  private async copyFrom(fh: FileHandle, start: number, length: number, what: string): Promise<void> {
    const read = async (offset: number): Promise<Buffer> => {
      const size = Math.min(CHUNK, length - offset);
      const buf = Buffer.allocUnsafe(size);
      let done = 0;
      while (done < size) {
        const { bytesRead } = await fh.read(buf, done, size - done, start + offset + done);
        if (bytesRead === 0) throw new BasaltError('integrity', `${what} ended early (it changed while being read?)`);
        done += bytesRead;
      }
      return buf;
    };
    let next = length > 0 ? read(0) : undefined;
    for (let offset = 0; offset < length; ) {
      const chunk = await (next as Promise<Buffer>);
      offset += chunk.length;
      next = offset < length ? read(offset) : undefined;
      await this.push(chunk);
    }
  }

  async finish(): Promise<void> {
    await this.pendingWrite;
  }
}

export async function writeAll(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}
