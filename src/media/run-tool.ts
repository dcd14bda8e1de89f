/**
 * Runs the external programs media work needs (mkfs, mtools, qemu-img in tests) without a
 * shell, turning "not installed" and "failed" into 'tool' errors that name the Debian
 * package to install.
 */
import { spawn } from 'node:child_process';
import { BasaltError } from '../oci/errors.js';

/** The Debian package that provides each program basalt's media code runs. */
export const PACKAGE_OF: Readonly<Record<string, string>> = {
  'mkfs.vfat': 'dosfstools',
  'mkfs.fat': 'dosfstools',
  mmd: 'mtools',
  mcopy: 'mtools',
  mdir: 'mtools',
  'mkfs.ext4': 'e2fsprogs',
  mke2fs: 'e2fsprogs',
  debugfs: 'e2fsprogs',
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-img': 'qemu-utils',
  sfdisk: 'fdisk',
  sgdisk: 'gdisk',
  blockdev: 'util-linux',
  partx: 'util-linux',
  fallocate: 'util-linux',
  'mkfs.xfs': 'xfsprogs',
  mount: 'mount',
  umount: 'mount',
  chattr: 'e2fsprogs',
  mksquashfs: 'squashfs-tools',
  'grub-mkimage': 'grub-common',
};

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ToolOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Return non-zero exits to the caller instead of throwing (to rephrase known failures). */
  allowFailure?: boolean;
}

export function missingToolError(program: string, cause?: unknown): BasaltError {
  const pkg = PACKAGE_OF[program];
  return new BasaltError('tool', `${program} is not installed`, {
    hint: pkg ? `install the ${pkg} package (apt-get install ${pkg})` : `install ${program}`,
    ...(cause === undefined ? {} : { cause }),
  });
}

export function runTool(program: string, args: readonly string[], options: ToolOptions = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.env ? { env: options.env } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'ENOENT' ? missingToolError(program, e) : new BasaltError('tool', `cannot run ${program}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      const result = { code: code ?? 128, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      if (result.code !== 0 && !options.allowFailure) {
        const how = signal ? `killed by ${signal}` : `exit ${result.code}`;
        reject(new BasaltError('tool', `${program} ${args.join(' ')} failed (${how}): ${result.stderr.trim() || result.stdout.trim()}`));
      } else resolve(result);
    });
  });
}
