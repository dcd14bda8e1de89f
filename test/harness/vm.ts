/**
 * What VM tests share: a Debian kernel from the apt repositories (cached), ssh through a
 * forwarded port with a per-run key pair, free host ports, a VM that is always ended, and
 * a printed time budget per test. Fixtures live in the fixture cache (fixture-cache.ts).
 */
import { createServer } from 'node:net';
import { copyFile, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startVm, type VmHandle, type VmOptions } from '../../src/media/vm.js';
import { cacheKey, cachedFixture } from './fixture-cache.js';
import { requireTool, run, tempDir } from './tools.js';

export { cachedFixture, cacheKey, CACHE_ROOT } from './fixture-cache.js';
export { markerInitramfs } from './initramfs.js';

/** Serial-console markers tests print from guests and wait for. */
export const Markers = {
  initramfsReached: 'BASALT-TEST-INITRAMFS-OK',
  bootComplete: 'BASALT-TEST-BOOT-COMPLETE',
} as const;

/** The kernel package linux-image-amd64 currently points at, and its candidate version. */
function debianKernelPackage(): { name: string; version: string } {
  const deps = run('apt-cache', ['depends', 'linux-image-amd64']);
  const name = /Depends:\s*(linux-image-[0-9][^\s]*-amd64)/.exec(deps)?.[1];
  if (!name) throw new Error(`cannot find the kernel package behind linux-image-amd64 in: ${deps}`);
  const version = /Candidate:\s*(\S+)/.exec(run('apt-cache', ['policy', name]))?.[1] ?? 'unknown';
  return { name, version };
}

/** Path of a Debian vmlinuz, downloaded with apt-get download once per machine. */
export async function debianKernel(): Promise<string> {
  requireTool('apt-get');
  requireTool('dpkg-deb');
  const pkg = debianKernelPackage();
  const dir = await cachedFixture(cacheKey('debian-kernel', pkg), async (out) => {
    run('apt-get', ['download', '-q', pkg.name], { cwd: out });
    const deb = (await readdir(out)).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg.name} left no .deb in ${out}`);
    const x = join(out, 'x');
    run('dpkg-deb', ['-x', join(out, deb), x]);
    const boot = (await readdir(join(x, 'boot'))).find((f) => f.startsWith('vmlinuz-'));
    if (!boot) throw new Error(`${deb} has no /boot/vmlinuz-*`);
    await copyFile(join(x, 'boot', boot), join(out, 'vmlinuz'));
    await rm(x, { recursive: true, force: true });
    await rm(join(out, deb), { force: true });
  });
  return join(dir, 'vmlinuz');
}

/** A free TCP port on loopback (for --port-forward). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface SshKeyPair {
  privateKey: string;
  publicKey: string;
  /** The public key line, for authorized_keys or config.toml's key. */
  publicLine: string;
}

/** A fresh ed25519 key pair in a temp dir (one per run, never reused across machines). */
export async function sshKeyPair(): Promise<SshKeyPair> {
  requireTool('ssh-keygen');
  const dir = await tempDir('ssh');
  const privateKey = join(dir, 'id_ed25519');
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'basalt-test', '-f', privateKey]);
  return { privateKey, publicKey: `${privateKey}.pub`, publicLine: (await readFile(`${privateKey}.pub`, 'utf8')).trim() };
}

function sshArgs(port: number, user: string, key: string, command: string): string[] {
  return ['-i', key, '-p', String(port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10', '-o', 'BatchMode=yes', `${user}@127.0.0.1`, command];
}

/** Runs `command` in the guest over ssh; throws with its output on failure. */
export function sshRun(port: number, user: string, key: string, command: string): string {
  requireTool('ssh');
  return run('ssh', sshArgs(port, user, key, command));
}

/** Retries ssh until the guest answers or `timeoutMs` passes. */
export async function waitForSsh(port: number, user: string, key: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      sshRun(port, user, key, 'true');
      return;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  throw new Error(`ssh to ${user}@127.0.0.1:${port} did not succeed within ${timeoutMs / 1000} s: ${last}`);
}

/** Starts a clock; the returned function prints "[vm-time] NAME: N.N s" and returns the seconds. */
export function timeBudget(name: string): () => number {
  const started = process.hrtime.bigint();
  return () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`[vm-time] ${name}: ${seconds.toFixed(1)} s`);
    return seconds;
  };
}

/**
 * Runs `fn` with a started VM and always ends it (clean power-down first, then by PID),
 * printing the time the test took.
 */
export async function withVm<T>(name: string, options: VmOptions, fn: (vm: VmHandle) => Promise<T>): Promise<T> {
  requireTool('qemu-system-x86_64');
  const done = timeBudget(name);
  const vm = await startVm(options);
  try {
    return await fn(vm);
  } catch (e) {
    if (vm.serialLog) console.log(`[vm] serial log of ${name}: ${vm.serialLog}`);
    throw e;
  } finally {
    await vm.shutdown(30_000).catch(() => vm.kill());
    done();
  }
}

/**
 * A power cut: QEMU is SIGKILLed by its PID at once (no ACPI, no flush by the guest), and the
 * disk keeps what the guest had written to it. For crash tests that boot the same disk again
 * (start it without `snapshot`).
 */
export async function powerCut(vm: VmHandle): Promise<void> {
  try {
    process.kill(vm.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  await vm.exited.catch(() => null);
}
