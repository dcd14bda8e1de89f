import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Fails (never skips) when a program a test needs is missing: the project's rule is that a
 * test which cannot run its real part says what is missing instead of passing silently.
 */
export function requireTool(name: string, hint = 'run ./scripts/setup, which installs every tool the tests use'): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`this test needs "${name}", which is not installed: ${hint}`);
  }
}

/** A temp dir removed when `fn` ends. */
export async function withTempDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), `basalt-test-${prefix}-`));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `basalt-test-${prefix}-`));
}

/** Runs a program, returning stdout; throws with stderr on failure. */
export function run(cmd: string, args: string[], options: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...options, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; status?: number };
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${err.status}): ${err.stderr ?? ''}${err.stdout ?? ''}`);
  }
}

/** The repository root (tests run from dist/test/...). */
export const REPO_ROOT = new URL('../../../', import.meta.url).pathname.replace(/\/$/, '');
export const SHARED = join(REPO_ROOT, '..', 'shared');
