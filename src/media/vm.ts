/**
 * Runs a disk or ISO under QEMU (`basalt vm`, and every VM test): UEFI through OVMF with a
 * private variable store by default, KVM where it works, TCG otherwise. The serial console
 * is captured to a log (and watched for markers) or handed to the terminal. QEMU is only
 * ever ended through its own PID: ACPI power-down over QMP first, then SIGTERM, SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError } from '../oci/errors.js';
import { makeTempDir } from '../oci/fsutil.js';
import { chooseAccel, type Accel } from './accel.js';
import { detectImageFormat, type ImageFormat } from './disk-format.js';
import { findOvmf, privateVars } from './firmware.js';
import { QmpClient } from './qmp.js';
import { qemuArgs, type PortForward, type VmDrive } from './qemu-args.js';
import { missingToolError } from './run-tool.js';

export interface VmOptions {
  /** Disks and ISOs, booted in this order; formats are detected unless given. */
  drives: ReadonlyArray<string | { path: string; format?: ImageFormat }>;
  firmware?: 'uefi' | 'bios';
  memoryMiB?: number;
  cpus?: number;
  portForwards?: readonly PortForward[];
  /** Cut the guest off every network (offline updates); port forwards into the guest keep working. */
  restrictNetwork?: boolean;
  /** Serial console on the inherited terminal instead of a log file. */
  console?: boolean;
  /** Discard writes to the disks when the VM ends. */
  snapshot?: boolean;
  /** Where the serial log goes (default: inside the run directory). */
  serialLog?: string;
  /** Run directory for the firmware variables, QMP socket and log (default: a temp dir, removed when QEMU ends). */
  runDir?: string;
  accel?: Accel | 'auto';
  extraArgs?: readonly string[];
}

export interface VmHandle {
  pid: number;
  accel: Accel;
  args: readonly string[];
  /** The serial log file (undefined with console: true). */
  serialLog: string | undefined;
  /** Resolves with QEMU's exit code (null when killed by a signal) once it has ended. */
  exited: Promise<number | null>;
  /** Everything the serial console printed so far. */
  serialText(): string;
  /** Resolves with the first match of `pattern` in the serial output (also in what was already printed). */
  waitForSerial(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Types `text` on the serial console. */
  sendSerial(text: string): void;
  /** ACPI power-down, waiting up to `timeoutMs` for the guest to halt, then SIGTERM/SIGKILL. */
  shutdown(timeoutMs?: number): Promise<void>;
  /** Ends QEMU now (SIGTERM, then SIGKILL). */
  kill(): Promise<void>;
}

const tail = (text: string, lines = 15): string => text.split('\n').slice(-lines).join('\n');

class RunningVm implements VmHandle {
  readonly pid: number;
  readonly exited: Promise<number | null>;
  private output = '';
  private exitCode: number | null | undefined;
  private watchers = new Set<() => void>();
  private stderr = '';

  constructor(
    private readonly child: ChildProcess,
    readonly accel: Accel,
    readonly args: readonly string[],
    readonly serialLog: string | undefined,
    private readonly qmpSocket: string,
    log: WriteStream | undefined,
    cleanup: () => Promise<void>,
  ) {
    if (child.pid === undefined) throw new BasaltError('tool', 'qemu-system-x86_64 did not start');
    this.pid = child.pid;
    child.stdout?.on('data', (d: Buffer) => {
      log?.write(d);
      this.output += d.toString('utf8');
      for (const w of this.watchers) w();
    });
    child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString('utf8');
    });
    this.exited = new Promise((resolve) => {
      child.on('close', (code) => {
        this.exitCode = code;
        for (const w of this.watchers) w();
        const done = (): void => {
          void cleanup().then(() => resolve(code), () => resolve(code));
        };
        if (log) log.end(done);
        else done();
      });
    });
  }

  serialText(): string {
    return this.output;
  }

  get qemuErrors(): string {
    return this.stderr.trim();
  }

  waitForSerial(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    if (this.serialLog === undefined) return Promise.reject(new BasaltError('usage', 'the serial console is on the terminal; it cannot be watched'));
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const check = (): void => {
        const m = this.output.match(pattern);
        if (m) {
          stop();
          resolve(m);
        } else if (this.exitCode !== undefined) {
          stop();
          reject(new BasaltError('tool', `QEMU ended (exit ${this.exitCode}) before the serial console printed ${pattern}${this.stderr ? `; QEMU said: ${this.stderr.trim()}` : ''}\nlast serial output:\n${tail(this.output)}`));
        }
      };
      const timer = setTimeout(() => {
        stop();
        reject(new BasaltError('tool', `the serial console did not print ${pattern} within ${Math.round((Date.now() - started) / 1000)} s\nlast serial output:\n${tail(this.output)}`, { hint: `see the whole log in ${this.serialLog}` }));
      }, timeoutMs);
      const stop = (): void => {
        clearTimeout(timer);
        this.watchers.delete(check);
      };
      this.watchers.add(check);
      check();
    });
  }

  sendSerial(text: string): void {
    if (!this.child.stdin || this.serialLog === undefined) throw new BasaltError('usage', 'the serial console is on the terminal; basalt cannot type on it');
    this.child.stdin.write(text);
  }

  private async waitExit(ms: number): Promise<boolean> {
    if (this.exitCode !== undefined) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const result = await Promise.race([this.exited.then(() => true as const), timeout]);
    clearTimeout(timer);
    return result;
  }

  async shutdown(timeoutMs = 60_000): Promise<void> {
    if (this.exitCode !== undefined) return;
    try {
      const qmp = await QmpClient.connect(this.qmpSocket);
      try {
        await qmp.execute('system_powerdown');
      } finally {
        qmp.close();
      }
      if (await this.waitExit(timeoutMs)) return;
    } catch {
      // QMP unreachable (QEMU already exiting, or wedged): fall through to signals.
    }
    await this.kill();
  }

  async kill(): Promise<void> {
    if (this.exitCode !== undefined) return;
    process.kill(this.pid, 'SIGTERM');
    if (await this.waitExit(5000)) return;
    process.kill(this.pid, 'SIGKILL');
    await this.exited;
  }
}

async function resolveDrives(drives: VmOptions['drives']): Promise<VmDrive[]> {
  return Promise.all(
    drives.map(async (d) => {
      const path = typeof d === 'string' ? d : d.path;
      const format = (typeof d === 'string' ? undefined : d.format) ?? (await detectImageFormat(path));
      return { path, format };
    }),
  );
}

export async function startVm(options: VmOptions): Promise<VmHandle> {
  const drives = await resolveDrives(options.drives);
  const ownRunDir = options.runDir === undefined;
  const runDir = options.runDir ?? (await makeTempDir('vm'));
  try {
    const accel = options.accel && options.accel !== 'auto' ? options.accel : await chooseAccel();
    const firmwareKind = options.firmware ?? 'uefi';
    const firmware = firmwareKind === 'uefi' ? await (async () => {
      const ovmf = await findOvmf();
      return { kind: 'uefi' as const, ovmf, vars: await privateVars(ovmf, runDir) };
    })() : { kind: 'bios' as const };
    const qmpSocket = join(runDir, 'qmp.sock');
    const args = qemuArgs({
      accel,
      firmware,
      memoryMiB: options.memoryMiB ?? 2048,
      cpus: options.cpus ?? 2,
      drives,
      portForwards: options.portForwards ?? [],
      serial: options.console ? 'terminal' : 'pipe',
      qmpSocket,
      snapshot: Boolean(options.snapshot),
      ...(options.restrictNetwork ? { restrictNetwork: true } : {}),
      ...(options.extraArgs ? { extraArgs: options.extraArgs } : {}),
    });
    const serialLog = options.console ? undefined : (options.serialLog ?? join(runDir, 'serial.log'));
    const child = spawn('qemu-system-x86_64', args, { stdio: options.console ? 'inherit' : ['pipe', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? missingToolError('qemu-system-x86_64', e) : new BasaltError('tool', `cannot start QEMU: ${e.message}`, { cause: e })));
    });
    const log = serialLog ? createWriteStream(serialLog) : undefined;
    // The run directory goes when QEMU ends, except a serial log inside it, which callers read afterwards.
    const logInRunDir = serialLog !== undefined && serialLog.startsWith(`${runDir}/`);
    const cleanup = async (): Promise<void> => {
      if (ownRunDir && !logInRunDir) await rm(runDir, { recursive: true, force: true });
      else await Promise.all([rm(qmpSocket, { force: true }), firmware.kind === 'uefi' && ownRunDir ? rm(firmware.vars, { force: true }) : undefined]);
    };
    return new RunningVm(child, accel, args, serialLog, qmpSocket, log, cleanup);
  } catch (e) {
    if (ownRunDir) await rm(runDir, { recursive: true, force: true });
    throw e;
  }
}
