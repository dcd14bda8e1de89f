import { appendFileSync, readFileSync } from 'node:fs';

/**
 * Named kill points: a test hook that proves updates survive a crash at the moments that
 * matter (docs/boot-safety.md lists them and the tests that use them).
 *
 * - `BASALT_CRASH_AT=NAME` in the environment: at the point NAME the process SIGKILLs itself
 *   (and its process group when it leads one, so an ostree child dies with it, as in a power
 *   cut). A real kill: no finally blocks, no cleanup, no flushed buffers.
 * - `/run/basalt/test-pause` holding `NAME SECONDS`: at the point NAME the process writes
 *   `BASALT-TEST-PAUSED NAME` to /dev/console and sleeps, so a VM test can cut the power while
 *   a service (the shutdown ESP mirror) is in the middle of its work. /run is a tmpfs: the
 *   file never outlives a boot.
 *
 * Neither is set on a normal system; then a point costs one environment lookup and one
 * failed open.
 */
export const CRASH_POINTS = [
  /** (1) a layer is being streamed into ostree: some bytes written, the layer not committed. */
  'layer-download',
  /** (2) the merged image tree is checked out in the repository, its commit not yet made. */
  'import-commit',
  /**
   * (3) ostree has deployed (boot version swapped) and the ESP mirror has not started; also
   * where rollback, kargs and cleanup stand once ostree has changed the deployments.
   */
  'ostree-deployed',
  /** (4) the new kernel and initramfs are on the ESP, the new entry not yet written. */
  'esp-kernel-copied',
  /** (5) the new entry is written, existing entries not yet rewritten (order not updated). */
  'esp-entry-written',
  /** (6) every entry is current, entries of deployments ostree removed are still there. */
  'esp-old-entries',
] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export const CRASH_ENV = 'BASALT_CRASH_AT';
export const PAUSE_FILE = '/run/basalt/test-pause';
export const PAUSE_MARKER = 'BASALT-TEST-PAUSED';

function pauseSeconds(name: CrashPoint): number | undefined {
  let text: string;
  try {
    text = readFileSync(PAUSE_FILE, 'utf8');
  } catch {
    return undefined;
  }
  const [point, seconds] = text.trim().split(/\s+/);
  const n = Number(seconds);
  return point === name && Number.isFinite(n) && n > 0 ? n : undefined;
}

export async function crashPoint(name: CrashPoint): Promise<void> {
  if (process.env[CRASH_ENV] === name) {
    try {
      process.kill(-process.pid, 'SIGKILL');
    } catch {
      // not a process group leader: the process alone
    }
    process.kill(process.pid, 'SIGKILL');
  }
  const seconds = pauseSeconds(name);
  if (seconds === undefined) return;
  try {
    appendFileSync('/dev/console', `${PAUSE_MARKER} ${name}\n`);
  } catch {
    // no console (a container): the pause alone still serves
  }
  await new Promise((r) => setTimeout(r, seconds * 1000));
}
