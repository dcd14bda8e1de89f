import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, symlink, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { basalt, basaltOk } from '../harness/cli.js';
import { requireTool, run, tempDir } from '../harness/tools.js';

/**
 * `basalt disk` and `basalt install to-disk` on a tiny image with a stand-in kernel: the
 * partition table, the ESP entries, the users of config.toml, and the failure paths. The
 * real kernel boots in the e2e and media tests.
 */
async function tinyOs(dir: string): Promise<void> {
  await mkdir(join(dir, 'usr/lib/modules/6.1.0-x'), { recursive: true });
  await mkdir(join(dir, 'etc'), { recursive: true });
  await mkdir(join(dir, 'usr/lib/bootc/kargs.d'), { recursive: true });
  await mkdir(join(dir, 'var/lib/seed'), { recursive: true });
  await writeFile(join(dir, 'usr/lib/modules/6.1.0-x/vmlinuz'), 'kernel');
  await writeFile(join(dir, 'usr/lib/modules/6.1.0-x/initramfs.img'), 'initramfs');
  await writeFile(join(dir, 'usr/lib/os-release'), 'ID=debian\nNAME=Tiny\n');
  await symlink('../usr/lib/os-release', join(dir, 'etc/os-release'));
  await writeFile(join(dir, 'usr/lib/bootc/kargs.d/10-test.toml'), 'kargs = ["quiet"]\n');
  await writeFile(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(dir, 'etc/group'), 'root:x:0:\nsudo:x:27:\n');
  await writeFile(join(dir, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o600 });
  await writeFile(join(dir, 'etc/gshadow'), 'root:*::\nsudo:*::\n', { mode: 0o600 });
  await writeFile(join(dir, 'var/lib/seed/data'), 'seeded at install\n');
}

function partitions(disk: string): { start: number; size: number; type: string; name: string }[] {
  return (JSON.parse(run('sfdisk', ['-J', disk])) as { partitiontable: { partitions: { start: number; size: number; type: string; name: string }[] } }).partitiontable.partitions;
}

test('basalt disk --config: GPT ESP + root, systemd-boot entry with kargs, config.toml users', async () => {
  for (const t of ['ostree', 'mkfs.ext4', 'mkfs.vfat', 'mcopy', 'debugfs', 'sfdisk', 'useradd', 'qemu-img']) requireTool(t);
  const work = await tempDir('disk');
  const env = { BASALT_STORE: join(work, 'store') };
  await tinyOs(join(work, 'tree'));
  basaltOk(['image', 'pack', join(work, 'tree'), '-t', 'tiny/os:1'], { env });
  const out = join(work, 'out');
  basaltOk(['disk', 'tiny/os:1', '--type', 'raw', '--config', join(process.cwd(), '..', 'shared/examples/appliance/config.toml'), '-o', out, '--karg', 'extra=1'], { env });
  assert.deepEqual(await readdir(out), ['disk.raw'], 'only the disk, no work files');
  const disk = join(out, 'disk.raw');
  const [esp, root] = partitions(disk);
  assert.equal(esp?.type, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
  assert.equal(root?.type, '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709');
  const mt = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
  const espAt = `${disk}@@${(esp?.start ?? 0) * 512}`;
  assert.match(run('mdir', ['-i', espAt, '-b', '-/', '::/'], { env: mt }), /EFI\/BOOT\/BOOTX64\.EFI/);
  const entry = run('mtype', ['-i', espAt, '::/loader/entries/*.conf'], { env: mt });
  assert.match(entry, /^options root=PARTUUID=[0-9a-f-]+ rw quiet extra=1 console=ttyS0 basalt\.deployment=default\/[0-9a-f]{64}\.0 ostree=\/ostree\/boot\.1\//m);
  assert.doesNotMatch(run('mtype', ['-i', espAt, '::/loader/loader.conf'], { env: mt }), /^default/m, 'no fixed default');
  const rootImg = join(work, 'root.img');
  run('dd', [`if=${disk}`, `of=${rootImg}`, 'bs=512', `skip=${root?.start}`, `count=${root?.size}`, 'status=none']);
  const deployments = run('debugfs', ['-R', 'ls /ostree/deploy/default/deploy', rootImg]);
  const dep = /([0-9a-f]{64}\.0)/.exec(deployments)?.[1];
  assert.ok(dep, deployments);
  const passwd = run('debugfs', ['-R', `cat /ostree/deploy/default/deploy/${dep}/etc/passwd`, rootImg]);
  assert.match(passwd, /^alice:x:1000:1000::\/var\/home\/alice:/m);
  assert.match(run('debugfs', ['-R', `cat /ostree/deploy/default/deploy/${dep}/etc/group`, rootImg]), /^sudo:x:27:alice$/m);
  assert.match(run('debugfs', ['-R', `cat /ostree/deploy/default/deploy/${dep}/etc/shadow`, rootImg]), /^alice:\$6\$/m);
  assert.match(run('debugfs', ['-R', 'cat /ostree/deploy/default/var/home/alice/.ssh/authorized_keys', rootImg]), /alice@example/);
  assert.equal(run('debugfs', ['-R', 'cat /ostree/deploy/default/var/lib/seed/data', rootImg]), 'seeded at install\n');
  const status = JSON.parse(basaltOk(['install', 'to-disk', join(work, 'second.raw'), '--source-imgref', 'tiny/os:1', '--json'], { env })) as { rootPartUuid: string; disk: string };
  assert.equal(status.disk, join(work, 'second.raw'));
});

test('bad input leaves nothing in the output: unknown config key, a size too small, a non-bootable image', async () => {
  const work = await tempDir('disk-bad');
  const env = { BASALT_STORE: join(work, 'store') };
  await tinyOs(join(work, 'tree'));
  basaltOk(['image', 'pack', join(work, 'tree'), '-t', 'tiny/os:1'], { env });
  await writeFile(join(work, 'bad.toml'), '[customizations.kernel]\nappnd = "x"\n');
  const out = join(work, 'out');
  const unknown = basalt(['disk', 'tiny/os:1', '--config', join(work, 'bad.toml'), '-o', out], { env });
  assert.notEqual(unknown.status, 0);
  assert.match(unknown.stderr, /appnd/);
  await writeFile(join(work, 'big'), Buffer.alloc(4 * 1024 * 1024, 1));
  const tooSmall = basalt(['disk', 'tiny/os:1', '--size', '1M', '-o', out], { env });
  assert.notEqual(tooSmall.status, 0);
  assert.match(tooSmall.stderr, /1M|1048576|size|fit/i);
  await mkdir(join(work, 'nokernel/etc'), { recursive: true });
  await writeFile(join(work, 'nokernel/etc/motd'), 'hi\n');
  basaltOk(['image', 'pack', join(work, 'nokernel'), '-t', 'tiny/nokernel:1'], { env });
  const notBootable = basalt(['disk', 'tiny/nokernel:1', '-o', out], { env });
  assert.notEqual(notBootable.status, 0);
  const left = await readdir(out).catch(() => [] as string[]);
  assert.deepEqual(left, [], `nothing half-written in ${out}: ${left.join(', ')}`);
});

/** A loop device over a sparse file, detached by the returned function. */
function loopDevice(file: string): { device: string; detach: () => void } {
  const device = run('losetup', ['-f', '--show', '-P', file]).trim();
  return { device, detach: () => run('losetup', ['-d', device]) };
}

test('install to-disk onto a block device (a loop device): refuses used or small devices untouched, --wipe writes GPT, ESP and a root filling the device', async () => {
  for (const t of ['losetup', 'blockdev', 'partx', 'sfdisk', 'e2fsck', 'debugfs', 'mdir']) requireTool(t);
  const work = await tempDir('to-device');
  const env = { BASALT_STORE: join(work, 'store') };
  await tinyOs(join(work, 'tree'));
  basaltOk(['image', 'pack', join(work, 'tree'), '-t', 'tiny/os:1'], { env });
  const backing = join(work, 'device.img');
  run('truncate', ['-s', '600M', backing]);
  run('sh', ['-c', `printf 'precious data' | dd of=${backing} conv=notrunc status=none`]);
  const small = join(work, 'small.img');
  run('truncate', ['-s', '40M', small]);
  const loop = loopDevice(backing);
  const tiny = loopDevice(small);
  try {
    const refused = basalt(['install', 'to-disk', loop.device, '--source-imgref', 'tiny/os:1'], { env });
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`${loop.device} holds data in its first MiB[\\s\\S]*--wipe`));
    assert.equal(run('head', ['-c', '13', loop.device]), 'precious data', 'nothing written without --wipe');
    assert.match(basalt(['install', 'to-disk', loop.device, '--wipe', '--size', '1G', '--source-imgref', 'tiny/os:1'], { env }).stderr, /root partition fills the device/);
    const tooSmall = basalt(['install', 'to-disk', tiny.device, '--source-imgref', 'tiny/os:1'], { env });
    assert.notEqual(tooSmall.status, 0);
    assert.match(tooSmall.stderr, new RegExp(`${tiny.device} is too small`));
    assert.equal(run('sh', ['-c', `head -c 1048576 ${tiny.device} | tr -d '\\000' | wc -c`]).trim(), '0', 'the small device stays untouched');

    basaltOk(['install', 'to-disk', loop.device, '--wipe', '--source-imgref', 'tiny/os:1', '--karg', 'extra=1'], { env });
    const [esp, root, more] = partitions(loop.device);
    assert.equal(more, undefined);
    assert.equal(esp?.type, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    assert.equal(root?.type, '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709');
    const sectors = Number(run('blockdev', ['--getsz', loop.device]).trim());
    assert.ok((root?.start ?? 0) + (root?.size ?? 0) >= sectors - 2048 - 34, 'the root partition fills the device');
    // The kernel sees the partitions (partx -u), so the filesystems are checked through them.
    run('e2fsck', ['-fn', `${loop.device}p2`]);
    assert.match(run('debugfs', ['-R', 'ls /ostree/deploy/default/deploy', `${loop.device}p2`]), /[0-9a-f]{64}\.0/);
    const mt = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    assert.match(run('mtype', ['-i', `${loop.device}p1`, '::/loader/entries/*.conf'], { env: mt }), /^options root=PARTUUID=[0-9a-f-]+ rw quiet extra=1 basalt\.deployment=/m);
  } finally {
    loop.detach();
    tiny.detach();
  }
});

test('install to-disk --filesystem xfs: the root made through a loop mount keeps the deployment (immutable flag too); refused on devices', async () => {
  for (const t of ['mkfs.xfs', 'losetup', 'mount', 'lsattr', 'sfdisk']) requireTool(t);
  const work = await tempDir('to-disk-xfs');
  const env = { BASALT_STORE: join(work, 'store') };
  await tinyOs(join(work, 'tree'));
  basaltOk(['image', 'pack', join(work, 'tree'), '-t', 'tiny/os:1'], { env });
  const disk = join(work, 'disk.raw');
  run('truncate', ['-s', '100M', join(work, 'device.img')]);
  basaltOk(['install', 'to-disk', disk, '--filesystem', 'xfs', '--source-imgref', 'tiny/os:1'], { env });
  const [, root] = partitions(disk);
  assert.equal(root?.type, '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709');
  const mnt = join(work, 'mnt');
  await mkdir(mnt);
  const loop = loopDevice(join(work, 'device.img'));
  try {
    run('mount', ['-o', `ro,loop,offset=${(root?.start ?? 0) * 512}`, disk, mnt]);
    try {
      assert.match(run('findmnt', ['-n', '-o', 'FSTYPE', mnt]), /xfs/);
      const deployments = await readdir(join(mnt, 'ostree/deploy/default/deploy'));
      const dep = deployments.find((n) => /^[0-9a-f]{64}\.0$/.test(n));
      assert.ok(dep, deployments.join(' '));
      assert.match(run('lsattr', ['-d', join(mnt, 'ostree/deploy/default/deploy', dep)]), /^\S*i\S* /);
      assert.equal(run('cat', [join(mnt, 'ostree/deploy/default/var/lib/seed/data')]), 'seeded at install\n');
    } finally {
      run('umount', [mnt]);
    }
    const refused = basalt(['install', 'to-disk', loop.device, '--wipe', '--filesystem', 'xfs', '--source-imgref', 'tiny/os:1'], { env });
    assert.match(refused.stderr, /xfs is made through a loop mount of a disk image file, not on the block device/);
  } finally {
    loop.detach();
  }
});
