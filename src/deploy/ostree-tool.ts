import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { BasaltError } from '../oci/errors.js';

/**
 * Runs the `ostree` program (never through a shell). Everything basalt does to a sysroot or
 * repository goes through here, so a missing or failing ostree is reported one way.
 */
export interface OstreeRun {
  stdout: string;
  stderr: string;
}

export interface OstreeOptions {
  /** Streamed to ostree's stdin (a layer tar for `commit --tree=tar=/dev/stdin`). */
  input?: Readable;
  /** A descriptor given to ostree as its stdin (a FIFO's read end). */
  stdinFd?: number;
  /** What the command is doing, for the error message ("importing layer sha256:…"). */
  what?: string;
}

export async function runOstree(args: readonly string[], options: OstreeOptions = {}): Promise<OstreeRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('ostree', [...args], { stdio: [options.stdinFd ?? 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'ENOENT'
          ? new BasaltError('tool', 'the ostree program is not installed', { hint: "install Debian's ostree package (apt-get install --no-install-recommends ostree)", cause: e })
          : new BasaltError('tool', `cannot run ostree: ${e.message}`, { cause: e }),
      ),
    );
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) return resolve({ stdout, stderr });
      const what = options.what ?? `ostree ${args[0] ?? ''}`;
      reject(new BasaltError('tool', `${what} failed: ${stderr.trim() || `exit ${code ?? signal}`}`));
    });
    if (options.input) {
      const input = options.input;
      // ostree may exit early (bad tar); the broken pipe is reported through its exit status.
      child.stdin?.on('error', () => undefined);
      input.on('error', (e) => {
        child.kill('SIGTERM');
        reject(e);
      });
      if (child.stdin) input.pipe(child.stdin);
    } else child.stdin?.end();
  });
}

/** `ostree --repo=REPO ARGS…`. */
export function runRepo(repo: string, args: readonly string[], options: OstreeOptions = {}): Promise<OstreeRun> {
  const [verb, ...rest] = args;
  return runOstree([verb ?? '', `--repo=${repo}`, ...rest], options);
}

/** A commit's metadata value in GVariant text form, or undefined when the key is not set. */
export async function metadataKey(repo: string, rev: string, key: string): Promise<string | undefined> {
  try {
    return (await runRepo(repo, ['show', `--print-metadata-key=${key}`, rev])).stdout.trim();
  } catch (e) {
    if (e instanceof BasaltError && /No such metadata key/.test(e.message)) return undefined;
    throw e;
  }
}

/** The commit a ref or checksum names, or undefined when it does not exist. */
export async function resolveRev(repo: string, rev: string): Promise<string | undefined> {
  try {
    return (await runRepo(repo, ['rev-parse', rev])).stdout.trim();
  } catch (e) {
    if (e instanceof BasaltError && e.kind === 'tool' && !/not installed/.test(e.message)) return undefined;
    throw e;
  }
}

/** Every ref under `prefix` (e.g. `basalt/layer`), as full ref names. */
export async function listRefs(repo: string, prefix: string): Promise<Set<string>> {
  const { stdout } = await runRepo(repo, ['refs', prefix]);
  const refs = new Set<string>();
  for (const line of stdout.split('\n')) {
    const name = line.trim();
    if (name !== '') refs.add(`${prefix}/${name}`);
  }
  return refs;
}
