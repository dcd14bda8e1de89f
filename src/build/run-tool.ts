import { spawn } from 'node:child_process';
import { BasaltError } from '../oci/errors.js';

/**
 * Runs the external programs builds are delegated to (mmdebstrap, systemd-nspawn, podman).
 * A missing program is a 'tool' error naming its Debian package; a failure carries the tail
 * of its stderr, which is where these tools say what went wrong.
 */
export interface ToolOptions {
  /** What is being done, for messages: "mmdebstrap for bookworm". */
  what: string;
  /** The Debian package that ships the program, for the hint. */
  debianPackage?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Each line of stderr as it arrives (progress). */
  onStderrLine?: (line: string) => void;
  signal?: AbortSignal;
}

export interface ToolResult {
  stdout: string;
  stderr: string;
}

const TAIL_LINES = 15;

/** The last lines of a tool's output, for an error message. */
export function tailOf(text: string, lines = TAIL_LINES): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export function runTool(program: string, args: readonly string[], options: ToolOptions): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      env: options.env ?? process.env,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    let partial = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      const text = c.toString('utf8');
      err += text;
      if (err.length > 4 << 20) err = err.slice(-(2 << 20)); // keep the tail, not the whole log
      if (options.onStderrLine) {
        const lines = (partial + text).split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) if (l.trim()) options.onStderrLine(l);
      }
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT')
        reject(new BasaltError('tool', `${options.what}: needs ${program}, which is not installed`, { hint: `install it: apt-get install ${options.debianPackage ?? program}` }));
      else if (e.name === 'AbortError') reject(new BasaltError('interrupted', `${options.what}: ${program} was interrupted`, { cause: e }));
      else reject(new BasaltError('tool', `${options.what}: cannot run ${program}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      if (code === 0) return resolve({ stdout, stderr: err });
      const how = signal ? `killed by ${signal}` : `exit ${code}`;
      reject(new BasaltError('tool', `${options.what}: ${program} failed (${how}):\n${tailOf(err || stdout)}`, { hint: `the lines above are the end of ${program}'s output` }));
    });
  });
}
