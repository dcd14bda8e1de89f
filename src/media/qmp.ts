/**
 * A minimal QEMU Machine Protocol client: enough to ask a guest to power down (the ACPI
 * power button) and to quit. One command at a time, JSON lines over a unix socket.
 */
import { createConnection, type Socket } from 'node:net';
import { BasaltError } from '../oci/errors.js';

export class QmpClient {
  private buffer = '';
  private waiting: Array<(msg: Record<string, unknown>) => void> = [];

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) !== -1) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (!line) continue;
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if ('event' in msg) continue; // asynchronous events are not answers
        this.waiting.shift()?.(msg);
      }
    });
  }

  /** Connects, reads the greeting and leaves capabilities negotiation mode. */
  static async connect(path: string, timeoutMs = 5000): Promise<QmpClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new BasaltError('tool', `QMP socket ${path} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(new BasaltError('tool', `cannot connect to QEMU's QMP socket ${path}: ${e.message}`, { cause: e }));
      });
    });
    const client = new QmpClient(socket);
    await client.next(timeoutMs); // greeting
    await client.execute('qmp_capabilities', timeoutMs);
    return client;
  }

  private next(timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new BasaltError('tool', `QMP did not answer within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
    });
  }

  async execute(command: string, timeoutMs = 5000): Promise<unknown> {
    const answer = this.next(timeoutMs);
    this.socket.write(`${JSON.stringify({ execute: command })}\n`);
    const msg = await answer;
    if ('error' in msg) throw new BasaltError('tool', `QMP ${command} failed: ${JSON.stringify(msg.error)}`);
    return msg.return;
  }

  close(): void {
    this.socket.destroy();
  }
}
