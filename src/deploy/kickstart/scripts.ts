import { spawn } from 'node:child_process';
import { lstat, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError } from '../../oci/errors.js';
import { makeTempDir } from '../../oci/fsutil.js';
import { runTool } from '../../media/run-tool.js';
import type { StagedInstall } from '../to-disk.js';
import type { Script } from './types.js';

/** Where %post --nochroot finds the new system, as in Anaconda. */
export const SYSIMAGE = '/mnt/sysimage';

export interface ScriptResult {
  kind: Script['kind'];
  line: number;
  exitCode: number;
  /** stdout and stderr, interleaved. */
  output: string;
}

function execute(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => out.push(d));
    child.on('error', (e) => reject(new BasaltError('tool', `cannot run ${cmd}: ${e.message}`, { cause: e })));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output: Buffer.concat(out).toString('utf8') }));
  });
}

async function isMountPoint(path: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((l) => l.split(' ')[1] === path);
}

/** Mounts in order; `undo` unmounts in reverse, lazily when a plain unmount fails (a process kept a file open). */
class Mounts {
  private readonly done: string[] = [];
  async add(args: string[], target: string): Promise<void> {
    await runTool('mount', [...args, target]);
    this.done.push(target);
  }
  async undo(): Promise<void> {
    for (const target of this.done.reverse()) {
      const r = await runTool('umount', [target], { allowFailure: true });
      if (r.code !== 0) await runTool('umount', ['-l', target], { allowFailure: true });
    }
    this.done.length = 0;
  }
}

/** %pre: in the installer's environment, before anything is written. */
export async function runPre(script: Script): Promise<ScriptResult> {
  const dir = await makeTempDir('ks-pre');
  try {
    const file = join(dir, `ks-script-${script.line}`);
    await writeFile(file, script.body, { mode: 0o700 });
    const r = await execute(script.interpreter, [file], process.env);
    return { kind: 'pre', line: script.line, exitCode: r.code, output: r.output };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * %post: chrooted into the staged deployment with /proc, /sys, /dev and the stateroot's /var
 * mounted, or with --nochroot in the installer with the deployment at /mnt/sysimage (and the
 * physical root at /mnt/sysroot). It runs before the disk is written, so its changes land on it.
 */
export async function runPost(script: Script, staged: StagedInstall): Promise<ScriptResult> {
  const dep = staged.deployment;
  const mounts = new Mounts();
  const env = { ...process.env, ANA_INSTALL_PATH: SYSIMAGE };
  try {
    if (script.nochroot) {
      for (const p of [SYSIMAGE, '/mnt/sysroot']) {
        if (await isMountPoint(p)) throw new BasaltError('usage', `%post --nochroot: ${p} is already a mount point`, { hint: 'unmount it (another install running?)' });
        await mkdir(p, { recursive: true });
      }
      await mounts.add(['--bind', dep], SYSIMAGE);
      await mounts.add(['--bind', staged.stateVar], `${SYSIMAGE}/var`);
      await mounts.add(['--bind', staged.sysroot], '/mnt/sysroot');
      const dir = await makeTempDir('ks-post');
      try {
        const file = join(dir, `ks-script-${script.line}`);
        await writeFile(file, script.body, { mode: 0o700 });
        const r = await execute(script.interpreter, [file], env);
        return { kind: 'post', line: script.line, exitCode: r.code, output: r.output };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    for (const d of ['proc', 'sys', 'dev', 'var', 'tmp'])
      if (!(await lstat(join(dep, d)).then((s) => s.isDirectory(), () => false))) throw new BasaltError('invalid', `%post at line ${script.line}: the image has no /${d} directory to run a script in`);
    if (!(await lstat(join(dep, script.interpreter)).then(() => true, () => false)))
      throw new BasaltError('invalid', `%post at line ${script.line}: the image has no ${script.interpreter}`, { hint: 'use an interpreter the image ships (--interpreter), or --nochroot' });
    await mounts.add(['-t', 'proc', 'proc'], join(dep, 'proc'));
    await mounts.add(['-t', 'sysfs', 'sysfs'], join(dep, 'sys'));
    await mounts.add(['--bind', '/dev'], join(dep, 'dev'));
    await mounts.add(['--bind', staged.stateVar], join(dep, 'var'));
    const name = `/tmp/ks-script-${script.line}`;
    await writeFile(join(dep, name), script.body, { mode: 0o700 });
    try {
      const r = await execute('chroot', [dep, script.interpreter, name], env);
      return { kind: 'post', line: script.line, exitCode: r.code, output: r.output };
    } finally {
      await rm(join(dep, name), { force: true });
    }
  } finally {
    await mounts.undo();
  }
}
