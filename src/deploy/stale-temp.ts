import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * basalt's temporary entries in a repository's tmp/ carry the writer's process id
 * (`basalt-PID-….fifo`, `basalt-merge-PID-…`). A run killed mid-import (a crash, a power cut)
 * leaves them behind; the merge staging tree is a full checkout. They are removed by the next
 * import once their process is gone. A live process (or a reused id after a reboot) keeps its
 * entries: removing too little is harmless, removing another run's staging tree is not.
 */
const TEMP_NAME = /^basalt-(?:merge-)?(\d+)-[0-9a-f]{12}(?:\.fifo)?$/;

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes basalt's leftovers of dead processes from `dir`; returns the names removed. */
export async function removeStaleTemp(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m || isAlive(Number(m[1]))) continue;
    await rm(join(dir, name), { recursive: true, force: true }).catch(() => undefined);
    removed.push(name);
  }
  return removed;
}
