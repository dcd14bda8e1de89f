import { chmod, mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError, ioError } from '../oci/errors.js';
import { writeFileAtomic } from '../oci/fsutil.js';
import { runRepo } from './ostree-tool.js';
import { deployImage, type DeployImageOptions, type DeployImageResult } from './deploy-image.js';
import { initSysroot, repoOf, stateVarDir, deployDir } from './sysroot.js';
import { espFiles, mirrorBootEntries, type EspFile, type MirrorOptions, type MirrorResult } from './bootentries.js';
import { directoryEsp } from './esp-target.js';

export interface InstallOptions extends Omit<DeployImageOptions, 'stateroot'> {
  /** Default `default`. */
  stateroot?: string;
  /** A file of SSH public keys for root (installed through a tmpfiles.d snippet, as bootc does). */
  rootSshAuthorizedKeys?: string;
  /** Also write the ESP files into this directory (a staging tree for the FAT image). */
  espDir?: string;
  esp?: MirrorOptions;
}

export interface InstallResult extends DeployImageResult {
  stateroot: string;
  /** What the ESP must hold: kernels, initramfs, entries, loader.conf. */
  espFiles: EspFile[];
  /** When espDir was given: what was written there. */
  espMirror?: MirrorResult;
}

/**
 * Installs an image into a plain directory that becomes a root filesystem (for disks,
 * `mkfs.ext4 -d` of it): an ostree sysroot with one deployment, the image's /var copied into
 * the stateroot's /var (only at install; updates never touch /var), root's SSH keys, and the
 * ESP content for systemd-boot. No mounts, no loop devices. Refuses a directory whose stateroot
 * already has a deployment: installing is for fresh roots; updates go through upgrade.
 */
export async function installToFilesystem(root: string, imageName: string, options: InstallOptions = {}): Promise<InstallResult> {
  const stateroot = options.stateroot ?? 'default';
  await initSysroot(root, stateroot);
  const existing = await readdir(join(root, 'ostree', 'deploy', stateroot, 'deploy')).catch(() => []);
  if (existing.some((n) => /^[0-9a-f]{64}\.\d+$/.test(n)))
    throw new BasaltError('usage', `${root} already has a deployment in stateroot ${stateroot}`, { hint: 'install into an empty directory, or use another --stateroot' });
  const keys = options.rootSshAuthorizedKeys === undefined ? undefined : await readKeys(options.rootSshAuthorizedKeys);
  const deployed = await deployImage(root, imageName, { ...options, stateroot });
  const { checksum, deploySerial } = deployed.deployment;
  await copyImageVar(root, stateroot, checksum);
  if (keys !== undefined) await installRootKeys(deployDir(root, stateroot, checksum, deploySerial), keys);
  const files = await espFiles(root, options.esp);
  const result: InstallResult = { ...deployed, stateroot, espFiles: files };
  if (options.espDir) {
    await mkdir(options.espDir, { recursive: true });
    result.espMirror = await mirrorBootEntries(root, directoryEsp(options.espDir), options.esp);
  }
  return result;
}

async function readKeys(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw ioError(`--root-ssh-authorized-keys ${file}`, e);
  }
  const keys = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (keys.length === 0) throw new BasaltError('invalid', `--root-ssh-authorized-keys ${file} holds no keys`);
  for (const k of keys) if (!/^(ssh-|ecdsa-|sk-|[a-z0-9-]+@openssh\.com)/.test(k) && !/ (ssh-|ecdsa-|sk-)/.test(k)) throw new BasaltError('invalid', `${file}: "${k.slice(0, 40)}" is not an SSH public key`);
  return `${keys.join('\n')}\n`;
}

/**
 * ostree ignores the image's /var when deploying (it is the shared, never rolled back /var);
 * at install it is seeded from the image, copied (not hardlinked into the repository: /var is
 * written to).
 */
async function copyImageVar(root: string, stateroot: string, checksum: string): Promise<void> {
  // ostree 2022.7's --allow-noent does not cover a missing --subpath: ask first.
  const hasVar = await runRepo(repoOf(root), ['ls', checksum, '/var'], { what: 'looking for /var in the image' }).then(() => true, () => false);
  if (!hasVar) return;
  await runRepo(repoOf(root), ['checkout', '--union', '--force-copy', '--allow-noent', '--subpath=/var', checksum, stateVarDir(root, stateroot)], { what: `copying the image's /var into ${stateVarDir(root, stateroot)}` });
}

/**
 * bootc's way: a tmpfiles.d snippet in the deployment's /etc writes root's authorized_keys at
 * boot, wherever /root points (/var/roothome on bootc-style images). It is a local /etc change,
 * so it survives updates through ostree's /etc merge.
 */
async function installRootKeys(deployment: string, keys: string): Promise<void> {
  const snippet = [
    '# Written by basalt install --root-ssh-authorized-keys',
    'd /root/.ssh 0700 root root -',
    `f~ /root/.ssh/authorized_keys 0600 root root - ${Buffer.from(keys).toString('base64')}`,
    '',
  ].join('\n');
  const path = join(deployment, 'etc', 'tmpfiles.d', 'basalt-root-ssh.conf');
  await writeFileAtomic(path, snippet, 0o644);
  await chmod(path, 0o644);
}
