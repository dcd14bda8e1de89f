/**
 * What Node cannot do itself — extended attributes and device nodes — done through the
 * system's small programs (attr's getfattr/setfattr, coreutils' mknod), batched so a layer
 * costs one process, not one per file.
 */
import { execFile, spawn } from 'node:child_process';
import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError } from '../errors.js';
import { makeTempDir } from '../fsutil.js';

const available = new Map<string, Promise<boolean>>();

/** Whether `program` is on PATH (cached per process). */
export function hasProgram(program: string): Promise<boolean> {
  let found = available.get(program);
  if (!found) {
    found = new Promise((resolve) => execFile('sh', ['-c', 'command -v "$1"', 'sh', program], (err) => resolve(!err)));
    available.set(program, found);
  }
  return found;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** getfattr's path quoting: bytes outside a safe set become \ooo octal (setfattr reverses it). */
function quotePath(path: string): string {
  let out = '';
  for (const byte of Buffer.from(path, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9._/+@%,:~-]/.test(c) ? c : `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return out;
}

function unquotePath(quoted: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < quoted.length; i++) {
    if (quoted[i] === '\\' && /^[0-7]{3}$/.test(quoted.slice(i + 1, i + 4))) {
      bytes.push(parseInt(quoted.slice(i + 1, i + 4), 8));
      i += 3;
    } else bytes.push(...Buffer.from(quoted[i] as string, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

export interface XattrFailure {
  path: string;
  reason: string;
}

/**
 * Sets xattrs on many files with one `setfattr -h --restore` (symlinks are not followed).
 * Returns the files setfattr reported errors for; throws 'tool' if it could not run at all.
 */
export async function setXattrsBatch(items: ReadonlyArray<{ path: string; xattrs: ReadonlyMap<string, Buffer> }>): Promise<XattrFailure[]> {
  if (items.length === 0) return [];
  const lines: string[] = [];
  for (const { path, xattrs } of items) {
    lines.push(`# file: ${quotePath(path)}`);
    for (const [name, value] of [...xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) lines.push(`${name}=0s${value.toString('base64')}`);
    lines.push('');
  }
  const dir = await makeTempDir('xattrs');
  try {
    const dump = join(dir, 'restore');
    await writeFile(dump, lines.join('\n') + '\n');
    // -h must come before --restore: setfattr applies the restore while parsing options.
    const { code, stderr } = await runProgram('setfattr', ['-h', `--restore=${dump}`]);
    const failures = stderr
      .split('\n')
      .filter((l) => l.startsWith('setfattr: '))
      .map((l) => {
        const rest = l.slice('setfattr: '.length);
        const colon = rest.lastIndexOf(': ');
        return colon === -1 ? { path: rest, reason: 'failed' } : { path: rest.slice(0, colon), reason: rest.slice(colon + 2) };
      });
    if (code !== 0 && failures.length === 0) throw new BasaltError('tool', `setfattr --restore failed (exit ${code}): ${stderr.trim()}`);
    return failures;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Every xattr under `dir` (not following symlinks), read by one `getfattr -R` run.
 * Keys are absolute paths. Returns undefined when getfattr is not installed.
 */
export async function readXattrsTree(dir: string): Promise<Map<string, Map<string, Buffer>> | undefined> {
  if (!(await hasProgram('getfattr'))) return undefined;
  const { code, stdout, stderr } = await runProgram('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names', '--', dir]);
  if (code !== 0 && stdout === '') throw new BasaltError('tool', `getfattr on ${dir} failed (exit ${code}): ${stderr.trim()}`);
  const result = new Map<string, Map<string, Buffer>>();
  let current: Map<string, Buffer> | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = new Map();
      result.set(unquotePath(line.slice('# file: '.length)), current);
    } else if (current && line !== '') {
      const eq = line.indexOf('=');
      const name = eq === -1 ? line : line.slice(0, eq);
      const value = eq === -1 ? '' : line.slice(eq + 1).replace(/^"(.*)"$/, '$1');
      current.set(name, value.startsWith('0s') ? Buffer.from(value.slice(2), 'base64') : Buffer.from(value, 'utf8'));
    }
  }
  return result;
}

/** Creates a device node or fifo with mknod(1); `kind` is mknod's c, b or p. */
export async function makeNode(path: string, kind: 'c' | 'b' | 'p', mode: number, major = 0, minor = 0): Promise<void> {
  const args = ['-m', (mode & 0o7777).toString(8), path, kind];
  if (kind !== 'p') args.push(String(major), String(minor));
  const { code, stderr } = await runProgram('mknod', args);
  if (code !== 0) throw new BasaltError('tool', `mknod ${path} failed (exit ${code}): ${stderr.trim()}`);
}

function runProgram(program: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e) => reject(new BasaltError('tool', `cannot run ${program}: ${e.message}`, { hint: `install ${program === 'mknod' ? 'coreutils' : 'the attr package'}`, cause: e })));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}
