import type { CopyEvent } from '../oci/copy.js';

/**
 * Per-blob progress bars on a TTY (stderr), JSON Lines when asked, silence otherwise.
 * Redraws at most every 100 ms so a fast copy is not slowed by the terminal.
 */
export type ProgressMode = 'auto' | 'tty' | 'json' | 'none';

interface BlobState {
  digest: string;
  size: number;
  done: number;
  state: 'copying' | 'done' | 'skipped';
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

export class CopyProgress {
  private readonly blobs = new Map<string, BlobState>();
  private lines = 0;
  private lastDraw = 0;
  private readonly mode: 'tty' | 'json' | 'none';

  constructor(mode: ProgressMode = 'auto', private readonly out: NodeJS.WriteStream = process.stderr) {
    this.mode = mode === 'auto' ? (out.isTTY ? 'tty' : 'none') : mode;
  }

  readonly onEvent = (e: CopyEvent): void => {
    if (this.mode === 'none') return;
    if (this.mode === 'json') {
      if (e.type !== 'blob-progress') this.out.write(`${JSON.stringify(e)}\n`);
      return;
    }
    switch (e.type) {
      case 'blob-start':
        this.blobs.set(e.digest, { digest: e.digest, size: e.size, done: 0, state: 'copying' });
        break;
      case 'blob-progress': {
        const b = this.blobs.get(e.digest);
        if (b) b.done += e.bytes;
        break;
      }
      case 'blob-done': {
        const b = this.blobs.get(e.digest);
        if (b) {
          b.state = e.skipped ? 'skipped' : 'done';
          b.done = b.size;
        }
        break;
      }
      case 'manifest':
        // Blobs so far belong to this manifest: leave their lines, start afresh below.
        this.draw(true);
        this.out.write(`Writing manifest ${e.digest}\n`);
        this.lines = 0;
        this.blobs.clear();
        return;
    }
    this.draw(e.type !== 'blob-progress');
  };

  private draw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const width = 30;
    const rows = [...this.blobs.values()].map((b) => {
      const short = b.digest.replace(/^sha256:/, '').slice(0, 12);
      if (b.state === 'skipped') return `Copying blob ${short} skipped: already exists`;
      const frac = b.size > 0 ? Math.min(1, b.done / b.size) : 1;
      const bar = '='.repeat(Math.round(frac * width)).padEnd(width, ' ');
      const tail = b.state === 'done' ? 'done' : `${human(b.done)} / ${human(b.size)}`;
      return `Copying blob ${short} [${bar}] ${tail}`;
    });
    let text = this.lines > 0 ? `\x1b[${this.lines}A` : '';
    for (const r of rows) text += `\x1b[2K${r}\n`;
    this.out.write(text);
    this.lines = rows.length;
  }

  finish(): void {
    if (this.mode === 'tty' && this.blobs.size > 0) this.draw(true);
  }
}
