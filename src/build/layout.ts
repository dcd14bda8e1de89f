import { lstat, mkdir, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ioError } from '../oci/errors.js';

/**
 * The bootable-container layout conventions, applied to a built tree, and the removal of
 * per-machine state a build leaves behind. /etc stays /etc: bootc images carry /etc and
 * the move to /usr/etc is an ostree detail done at install (bootc's etc-usretc lint fails
 * an image that has both), and a Containerfile FROM this image must still find /etc/apt.
 */

/** Top-level directories that are state, redirected into /var as ostree systems do. */
const STATE_LINKS: ReadonlyArray<[string, string]> = [
  ['home', 'var/home'],
  ['root', 'var/roothome'],
  ['srv', 'var/srv'],
  ['opt', 'var/opt'],
  ['mnt', 'var/mnt'],
  ['media', 'run/media'],
  ['usr/local', '../var/usrlocal'],
];

/** /var is created empty by ostree on a new machine; tmpfiles.d makes these at boot. */
const TMPFILES = `# Written by basalt base build: state directories behind the ostree layout's links.
d /var/home 0755 root root -
d /var/roothome 0700 root root -
d /var/srv 0755 root root -
d /var/opt 0755 root root -
d /var/mnt 0755 root root -
d /var/usrlocal 0755 root root -
d /var/usrlocal/bin 0755 root root -
d /var/usrlocal/etc 0755 root root -
d /var/usrlocal/lib 0755 root root -
d /var/usrlocal/sbin 0755 root root -
d /var/usrlocal/share 0755 root root -
d /var/usrlocal/src 0755 root root -
`;

/** Files that are per machine or that record the build (logs, caches with timestamps). */
const PER_MACHINE = [
  'etc/hostname',
  'etc/.resolv.conf.systemd-resolved.bak',
  'var/cache/ldconfig/aux-cache', // inode numbers and times of the build host
  'var/lib/dpkg/status-old',
  'var/lib/dpkg/diversions-old',
  'var/lib/dpkg/statoverride-old',
  'var/cache/debconf/config.dat-old',
  'var/cache/debconf/templates.dat-old',
  'var/lib/systemd/random-seed',
];

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(() => true, () => false);
}

async function emptyDir(dir: string, keep: (name: string) => boolean = () => false): Promise<void> {
  if (!(await exists(dir))) return;
  for (const name of await readdir(dir)) if (!keep(name)) await rm(join(dir, name), { recursive: true, force: true });
}

/** Removes regular files below `dir`, keeping the directories (packages expect them). */
async function removeFilesBelow(dir: string): Promise<void> {
  if (!(await exists(dir))) return;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) await removeFilesBelow(p);
    else await rm(p, { force: true });
  }
}

async function moveIntoVar(root: string, from: string, to: string): Promise<void> {
  const source = join(root, from);
  const target = join(root, from.includes('/') ? 'usr' : '', to);
  const st = await lstat(source).catch(() => undefined);
  if (st?.isSymbolicLink()) return;
  // /run is a tmpfs at runtime: nothing is kept for it in the image.
  const kept = !to.startsWith('run/');
  if (kept) await mkdir(target, { recursive: true });
  if (st?.isDirectory()) {
    if (kept) for (const name of await readdir(source)) await rename(join(source, name), join(target, name));
    await rm(source, { recursive: true });
  }
  await symlink(to, source);
}

export async function applyBootableLayout(root: string, kver: string): Promise<void> {
  try {
    // The kernel's companions go beside it; /boot is the boot partition's mount point.
    for (const [name, as] of [[`config-${kver}`, 'config'], [`System.map-${kver}`, 'System.map']] as const)
      if (await exists(join(root, 'boot', name))) await rename(join(root, 'boot', name), join(root, 'usr/lib/modules', kver, as));
    await emptyDir(join(root, 'boot'));
    // Device nodes: ostree drops them and /dev is devtmpfs at runtime.
    await emptyDir(join(root, 'dev'));
    for (const d of ['run', 'tmp', 'var/tmp']) await emptyDir(join(root, d));
    await mkdir(join(root, 'sysroot'), { recursive: true });
    await emptyDir(join(root, 'sysroot'));
    await rm(join(root, 'ostree'), { recursive: true, force: true });
    await symlink('sysroot/ostree', join(root, 'ostree'));
    for (const [from, to] of STATE_LINKS) await moveIntoVar(root, from, to);
    await mkdir(join(root, 'usr/lib/tmpfiles.d'), { recursive: true });
    await writeFile(join(root, 'usr/lib/tmpfiles.d/basalt-ostree-layout.conf'), TMPFILES);
    await removePerMachineState(root);
  } catch (e) {
    throw ioError(`applying the bootable layout to ${root}`, e);
  }
}

export async function removePerMachineState(root: string): Promise<void> {
  for (const f of PER_MACHINE) await rm(join(root, f), { force: true });
  const ssh = join(root, 'etc/ssh');
  await emptyDir(ssh, (name) => !name.startsWith('ssh_host_'));
  // An empty machine-id (not a missing one) tells systemd this is a first boot.
  await writeFile(join(root, 'etc/machine-id'), '');
  await removeFilesBelow(join(root, 'var/log'));
  await emptyDir(join(root, 'var/lib/apt/lists'), (n) => n === 'partial' || n === 'auxfiles');
  await emptyDir(join(root, 'var/cache/apt'), (n) => n === 'archives');
  await emptyDir(join(root, 'var/cache/apt/archives'), (n) => n === 'partial');
}
