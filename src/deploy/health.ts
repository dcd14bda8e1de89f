import { spawn } from 'node:child_process';
import { access, constants, readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ioError } from '../oci/errors.js';
import type { BootCounter } from './bootcount.js';

/**
 * Health checks, greenboot style: every executable in /usr/lib/basalt/health.d (shipped by the
 * image) and /etc/basalt/health.d (local) runs at boot, in name order; any non-zero exit fails
 * the boot. A file in /etc with the same name as one in /usr replaces it; a non-executable file
 * or a link to /dev/null there turns it off (as systemd's drop-in overrides do).
 */
export const HEALTH_DIRS = ['/usr/lib/basalt/health.d', '/etc/basalt/health.d'] as const;

export interface HealthCheck {
  name: string;
  path: string;
}

export interface HealthCheckResult extends HealthCheck {
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  /** Combined stdout and stderr (last 4 KiB). */
  output: string;
  seconds: number;
  timedOut: boolean;
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    if ((await realpath(path)) === '/dev/null') return false;
    if (!(await stat(path)).isFile()) return false;
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The checks that will run, in order (later directories override earlier ones by name). */
export async function listHealthChecks(dirs: readonly string[] = HEALTH_DIRS): Promise<HealthCheck[]> {
  const byName = new Map<string, string>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw ioError(`reading the health check directory ${dir}`, e);
    }
    for (const name of names) if (!name.startsWith('.')) byName.set(name, join(dir, name));
  }
  const out: HealthCheck[] = [];
  for (const name of [...byName.keys()].sort()) {
    const path = byName.get(name) as string;
    if (await isExecutableFile(path)) out.push({ name, path });
  }
  return out;
}

const OUTPUT_LIMIT = 4096;

function runOne(check: HealthCheck, timeoutMs: number): Promise<HealthCheckResult> {
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    let output = '';
    let timedOut = false;
    // Its own process group, so a timeout ends what the check started too (a `sleep` left behind
    // would hold the output pipe open and the boot with it).
    const child = spawn(check.path, [], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    const finish = (exitCode: number | null, signal: string | null, extra = ''): void => {
      clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      resolve({ ...check, ok: exitCode === 0 && !timedOut, exitCode, signal, output: output + extra, seconds, timedOut });
    };
    child.on('error', (e) => finish(null, null, `cannot run ${check.path}: ${e.message}`));
    child.on('close', (code, signal) => finish(code, signal));
  });
}

export interface RunHealthOptions {
  dirs?: readonly string[];
  /** Per check (default 5 minutes). */
  timeoutMs?: number;
}

/** Runs every check (all of them, even after a failure, so the log shows everything wrong). */
export async function runHealthChecks(options: RunHealthOptions = {}): Promise<HealthCheckResult[]> {
  const results: HealthCheckResult[] = [];
  for (const check of await listHealthChecks(options.dirs ?? HEALTH_DIRS)) results.push(await runOne(check, options.timeoutMs ?? 5 * 60_000));
  return results;
}

/**
 * What to do after a failed check. Reboot while the next boot can go somewhere better: this
 * boot is counted and has tries left (systemd-boot boots it again with one try less), or another
 * entry on the ESP is not out of tries (systemd-boot sorts a bad entry last, so it boots that one:
 * the rollback). Otherwise a reboot would only loop: the machine stays up, unblessed.
 */
export function afterFailure(counter: BootCounter | undefined, otherBootableEntry: boolean): 'reboot' | 'stay' {
  if (counter === undefined) return 'stay';
  return counter.triesLeft > 0 || otherBootableEntry ? 'reboot' : 'stay';
}
