import { execFile } from 'node:child_process';
import { CLI, type CliResult } from '../harness/cli.js';
import { REPO_ROOT } from '../harness/tools.js';

/**
 * Runs basalt without blocking the test process. The test registry's log is a pipe this
 * process drains; a run of synchronous spawns (harness `basalt()`) leaves it undrained until
 * the registry blocks on its own log write and stops answering (found here as 300-second
 * stalls of `basalt sign`). Tests that talk to a registry run the CLI through this instead.
 */
export function basaltAsync(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...options.env }, cwd: options.cwd ?? REPO_ROOT, maxBuffer: 512 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ status: code, stdout, stderr });
    });
  });
}

/** basaltAsync that fails with basalt's stderr unless it exits 0; returns standard output. */
export async function basaltAsyncOk(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<string> {
  const r = await basaltAsync(args, options);
  if (r.status !== 0) throw new Error(`basalt ${args.join(' ')} exited ${r.status}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** A child process run without blocking (podman, skopeo), with its combined output. */
export function runAsync(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ status: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, out: `${stdout}${stderr}` });
    });
  });
}
