import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, symlink, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { basaltOk } from '../../harness/cli.js';
import { run } from '../../harness/tools.js';

/**
 * A tiny bootable-layout OS for kickstart installs: a stand-in kernel, busybox as /bin/sh (so
 * %post can chroot), two units with [Install] sections (one enabled by the image), a zoneinfo
 * file, and the accounts files useradd edits. Packed into an OCI layout with basalt itself.
 */
export async function tinyKickstartOs(work: string): Promise<string> {
  const t = join(work, 'tree');
  for (const d of ['usr/lib/modules/6.1.0-ks', 'etc/systemd/system/multi-user.target.wants', 'usr/lib/systemd/system', 'usr/share/zoneinfo/Europe', 'usr/bin', 'var/lib/seed', 'proc', 'sys', 'dev', 'tmp', 'run'])
    await mkdir(join(t, d), { recursive: true });
  const put = (p: string, s: string, mode = 0o644): Promise<void> => writeFile(join(t, p), s, { mode });
  await put('usr/lib/modules/6.1.0-ks/vmlinuz', 'kernel\n');
  await put('usr/lib/modules/6.1.0-ks/initramfs.img', 'initramfs\n');
  await put('usr/lib/os-release', 'ID=debian\nNAME=Tiny\n');
  await symlink('../usr/lib/os-release', join(t, 'etc/os-release'));
  await put('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  await put('etc/group', 'root:x:0:\nsudo:x:27:\nwheel:x:10:\n');
  await put('etc/shadow', 'root:*:19000:0:99999:7:::\n', 0o600);
  await put('etc/gshadow', 'root:*::\nsudo:*::\nwheel:*::\n', 0o600);
  await put('etc/hostname', 'image-default\n');
  await put('var/lib/seed/data', 'seeded\n');
  await copyFile(run('sh', ['-c', 'command -v busybox']).trim(), join(t, 'usr/bin/busybox'));
  await chmod(join(t, 'usr/bin/busybox'), 0o755);
  await symlink('busybox', join(t, 'usr/bin/sh'));
  await symlink('usr/bin', join(t, 'bin'));
  await copyFile('/usr/share/zoneinfo/Europe/Paris', join(t, 'usr/share/zoneinfo/Europe/Paris'));
  const unit = (d: string): string => `[Unit]\nDescription=${d}\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n`;
  await put('usr/lib/systemd/system/hello.service', unit('hello'));
  await put('usr/lib/systemd/system/bye.service', unit('bye'));
  await symlink('/usr/lib/systemd/system/bye.service', join(t, 'etc/systemd/system/multi-user.target.wants/bye.service'));
  const layout = join(work, 'layout');
  basaltOk(['image', 'pack', t, '-t', `oci:${layout}:1`]);
  return `oci:${layout}:1`;
}

export interface PartitionJson {
  start: number;
  size: number;
  type: string;
  name: string;
}

export function partitions(disk: string): PartitionJson[] {
  return (JSON.parse(run('sfdisk', ['-J', disk])) as { partitiontable: { partitions: PartitionJson[] } }).partitiontable.partitions;
}

export async function sha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** A disk image file of `size` bytes whose first MiB holds old data (so clearing is visible). */
export async function oldDisk(path: string, size: number): Promise<void> {
  await writeFile(path, Buffer.alloc(1024 * 1024, 0xa5));
  execFileSync('truncate', ['-s', String(size), path]);
}

/** Does `password` hash to the crypt(3) `hash` (SHA-512)? Re-hashed with the same salt by openssl. */
export function passwordMatches(hash: string, password: string): boolean {
  const m = /^\$6\$([^$]+)\$/.exec(hash);
  if (!m) return false;
  return run('openssl', ['passwd', '-6', '-salt', m[1] as string, '-stdin'], { input: `${password}\n` }).trim() === hash;
}
