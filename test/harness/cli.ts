import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from './tools.js';

/** What users run: the bundled CLI behind bin/basalt (built by ./scripts/setup). */
export const CLI = `${REPO_ROOT}/dist/basalt.mjs`;

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs basalt as a user would, in its own process. */
export function basalt(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...options.env },
    cwd: options.cwd ?? REPO_ROOT,
    maxBuffer: 512 * 1024 * 1024,
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs basalt and fails with its stderr unless it exits 0. */
export function basaltOk(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): string {
  const r = basalt(args, options);
  if (r.status !== 0) throw new Error(`basalt ${args.join(' ')} exited ${r.status}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

