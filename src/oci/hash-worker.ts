import { Worker } from 'node:worker_threads';
import type { DigestAlgorithm } from './digest.js';

/**
 * sha256 of large blobs on a second thread. Node hashes on the thread that moves the bytes;
 * a copy of 270 MB spends ~200 ms of its main thread in sha256, which a worker takes off it
 * (the bytes are copied to the worker in 1 MiB batches, ~10x cheaper than hashing them).
 * Eval'd source keeps it working inside the single-file bundle.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  let h = hashes.get(m.id);
  if (!h) { h = createHash(m.algorithm); hashes.set(m.id, h); }
  if (m.buffer) h.update(new Uint8Array(m.buffer, 0, m.length));
  if (m.end) { hashes.delete(m.id); parentPort.postMessage({ id: m.id, digest: h.digest('hex') }); }
});
`;

const BATCH_BYTES = 1 << 20;

let worker: Worker | undefined;
let nextId = 1;
const pending = new Map<number, (hex: string) => void>();

function sharedWorker(): Worker {
  if (!worker) {
    worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    worker.on('message', (m: { id: number; digest: string }) => {
      pending.get(m.id)?.(m.digest);
      pending.delete(m.id);
    });
  }
  return worker;
}

/** An incremental hash computed on the shared worker thread. */
export class OffThreadHash {
  private readonly id = nextId++;
  private batch: Buffer = Buffer.allocUnsafeSlow(BATCH_BYTES);
  private used = 0;

  constructor(private readonly algorithm: DigestAlgorithm) {}

  update(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      const n = chunk.copy(this.batch, this.used, offset);
      this.used += n;
      offset += n;
      if (this.used === BATCH_BYTES) this.flush(false);
    }
  }

  private flush(end: boolean): void {
    const buffer = this.batch.buffer;
    sharedWorker().postMessage({ id: this.id, algorithm: this.algorithm, buffer, length: this.used, end }, [buffer as ArrayBuffer]);
    this.batch = Buffer.allocUnsafeSlow(end ? 0 : BATCH_BYTES);
    this.used = 0;
  }

  /** Ends an abandoned hash so the worker forgets it. */
  discard(): void {
    this.flush(true);
  }

  /** The hex digest of everything given to update(). */
  digest(): Promise<string> {
    const result = new Promise<string>((resolve) => pending.set(this.id, resolve));
    this.flush(true);
    sharedWorker().ref();
    return result.finally(() => {
      if (pending.size === 0) worker?.unref();
    });
  }
}
