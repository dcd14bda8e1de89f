import { copyFile, mkdir, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { runTool } from './run-tool.js';

/**
 * The kernel and its initramfs where bootable images keep them: /usr/lib/modules/KVER/
 * {vmlinuz,initramfs.img}. dracut runs inside the tree under systemd-nspawn, because it
 * needs /proc, /sys and /dev (without them it silently drops modules); `--reproducible`
 * with SOURCE_DATE_EPOCH makes its cpio byte-identical between runs. The `basalt` module
 * (units-safety.ts) recreates a missing ostree boot link before ostree-prepare-root.
 */
export async function kernelVersionOf(root: string): Promise<string> {
  const boot = await readdir(join(root, 'boot')).catch((e: unknown) => {
    throw ioError(`reading ${join(root, 'boot')}`, e);
  });
  const versions = boot.filter((n) => n.startsWith('vmlinuz-')).map((n) => n.slice('vmlinuz-'.length));
  if (versions.length !== 1)
    throw new BasaltError('invalid', `${join(root, 'boot')} has ${versions.length} kernels (${versions.join(', ') || 'none'}); a base image carries exactly one`, { hint: 'install one linux-image package' });
  return versions[0] as string;
}

export interface InitramfsOptions {
  sourceDateEpoch?: number;
  signal?: AbortSignal;
}

export async function buildInitramfs(root: string, kver: string, options: InitramfsOptions = {}): Promise<string> {
  const modules = join(root, 'usr/lib/modules', kver);
  try {
    await mkdir(modules, { recursive: true });
    await copyFile(join(root, 'boot', `vmlinuz-${kver}`), join(modules, 'vmlinuz'));
  } catch (e) {
    throw ioError(`placing the kernel in ${modules}`, e);
  }
  const out = `/usr/lib/modules/${kver}/initramfs.img`;
  const tmp = `${out}.tmp`;
  const env = options.sourceDateEpoch !== undefined ? [`--setenv=SOURCE_DATE_EPOCH=${options.sourceDateEpoch}`] : [];
  await runTool(
    'systemd-nspawn',
    ['-q', '--register=no', '--keep-unit', '--resolv-conf=off', '--timezone=off', '--link-journal=no', ...env, '-D', root,
      'dracut', '--reproducible', '--no-hostonly', '--force', '--add', 'ostree basalt', '--kver', kver, tmp],
    { what: `dracut (initramfs for kernel ${kver})`, debianPackage: 'systemd-container', ...(options.signal ? { signal: options.signal } : {}) },
  );
  await rename(join(root, tmp), join(root, out)).catch((e: unknown) => {
    throw ioError(`placing the initramfs ${join(root, out)}`, e);
  });
  return join(root, out);
}
