import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basalt, basaltOk } from '../../harness/cli.js';
import { startRegistry, freePort } from '../../harness/registry.js';
import { requireTool, run, tempDir } from '../../harness/tools.js';
import { oldDisk, partitions, passwordMatches, sha256, tinyKickstartOs } from './fixtures.js';

/**
 * `basalt install kickstart` end to end onto disk image files (real ostree, mkfs, useradd,
 * systemctl --root, chroot): from an OCI layout through --embedded-image, from a loopback
 * registry through --url, and the failure paths that must leave the disk byte-identical.
 * Every run passes --no-reboot: the kickstarts say reboot, and this machine must stay up.
 */

const ALICE_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKtest alice@laptop';
const ROOT_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKroot root@admin';

/** Reads files of the installed ext4 root with debugfs, without mounting. */
function ext4Reader(disk: string, work: string): { cat: (p: string) => string; ls: (p: string) => string; stat: (p: string) => string; dep: string } {
  const root = partitions(disk)[1];
  assert.ok(root, 'a root partition');
  const img = join(work, 'root.img');
  run('dd', [`if=${disk}`, `of=${img}`, 'bs=512', `skip=${root.start}`, `count=${root.size}`, 'status=none']);
  const dbg = (cmd: string): string => run('debugfs', ['-R', cmd, img]);
  const dep = /([0-9a-f]{64}\.0)/.exec(dbg('ls /ostree/deploy/default/deploy'))?.[1];
  assert.ok(dep, 'one deployment');
  return { cat: (p) => dbg(`cat ${p}`), ls: (p) => dbg(`ls -l ${p}`), stat: (p) => dbg(`stat ${p}`), dep: `/ostree/deploy/default/deploy/${dep}` };
}

test('install kickstart from an OCI layout (--embedded-image): layout, users, passwords, keys, services, settings, %pre and %post', async () => {
  for (const t of ['ostree', 'mkfs.ext4', 'mkfs.vfat', 'mcopy', 'debugfs', 'sfdisk', 'useradd', 'chpasswd', 'usermod', 'openssl', 'systemctl', 'chroot', 'mount', 'busybox']) requireTool(t);
  const started = Date.now();
  const work = await tempDir('ks-embedded');
  try {
    const image = await tinyKickstartOs(work);
    const disk = join(work, 'disk.raw');
    await oldDisk(disk, 512 * 1024 ** 2);
    const marker = join(work, 'pre.out');
    const ks = join(work, 'ks.cfg');
    await writeFile(ks, `# installed by the test
text
ostreecontainer --url=registry.lan:5000/tiny/os:1 --no-signature-verification
ignoredisk --only-use=${disk}
clearpart --all --initlabel
reqpart --add-boot
part /boot/efi --size=100 --fstype=efi
part / --grow --fstype=ext4
user --name=alice --groups=wheel,sudo --password="s3cret pw" --plaintext
user --name=bob --password='$6$saltsalt$7dQaGg0N0m6eZ0m1ZJ8o0aB8mhR5vG0dTRi0n8jvPyGmD0e2vJk7zT2W8TQ4Zlq5w9sZ0gO2b3sC5dE6fG7hH.' --iscrypted
rootpw --plaintext r00t
sshkey --username=alice "${ALICE_KEY}"
sshkey --username=root "${ROOT_KEY}"
services --enabled=hello --disabled=bye
network --bootproto=dhcp --device=enp1s0 --hostname=node1.lan
timezone Europe/Paris --utc
lang de_DE.UTF-8
keyboard de
bootloader --append="console=ttyS0 ks.test=1"
%pre --erroronfail
echo "pre ran" > ${marker}
%end
%post --erroronfail
echo "post in chroot on $(cat /etc/hostname), var has $(ls /var/lib)" > /etc/post-marker
cmp /run/systemd/resolve/stub-resolv.conf /run/systemd/resolve/resolv.conf && test -s /run/systemd/resolve/resolv.conf && echo resolver > /etc/post-resolver
%end
%post --nochroot
cp ${marker} "$ANA_INSTALL_PATH/etc/from-pre"
test -d /mnt/sysroot/ostree/repo && echo sysroot > "$ANA_INSTALL_PATH/etc/saw-sysroot"
%end
reboot
`);
    const check = basaltOk(['install', 'kickstart', ks, '--check', '--embedded-image', image]);
    assert.match(check, /^Image: +oci:.*layout:1 \(updates from docker:\/\/registry\.lan:5000\/tiny\/os:1\)$/m);
    assert.match(check, /^Then: +reboot$/m);
    const r = basalt(['install', 'kickstart', ks, '--embedded-image', image, '--no-reboot']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Installed oci:.* onto .*disk\.raw$/m);
    assert.match(r.stdout, /updates from docker:\/\/registry\.lan:5000\/tiny\/os:1$/m);
    assert.match(r.stderr, /warning: .*ks\.cfg:2: text has no effect/);
    assert.match(r.stderr, /warning: .*ks\.cfg: keyboard de has no effect on this image: it has no loadkeys/);
    assert.match(r.stderr, /warning: .*ks\.cfg: network has no effect on this image: it has no systemd-networkd/);
    assert.equal((await readFile(marker, 'utf8')), 'pre ran\n');

    // The disk keeps its size: GPT, a 100 MiB ESP, root filling the rest.
    const [esp, root] = partitions(disk);
    assert.equal((await stat(disk)).size, 512 * 1024 ** 2);
    assert.equal(esp?.type, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    assert.equal(esp?.size, 100 * 2048);
    assert.equal(root?.name, 'root');
    assert.ok((root?.start ?? 0) + (root?.size ?? 0) > 512 * 1024 ** 2 / 512 - 4096, 'root grows to the end');
    const mt = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    const entry = run('mtype', ['-i', `${disk}@@${(esp?.start ?? 0) * 512}`, '::/loader/entries/*.conf'], { env: mt });
    assert.match(entry, /^options root=PARTUUID=\S+ rw console=ttyS0 ks\.test=1 basalt\.deployment=default\//m);

    const fs = ext4Reader(disk, work);
    const etc = `${fs.dep}/etc`;
    assert.match(fs.cat(`${etc}/passwd`), /^alice:x:1000:1000::\/var\/home\/alice:\/bin\/bash$/m);
    const group = fs.cat(`${etc}/group`);
    assert.match(group, /^wheel:x:10:alice$/m);
    assert.match(group, /^sudo:x:27:alice$/m);
    const shadow = fs.cat(`${etc}/shadow`);
    const hashOf = (u: string): string => new RegExp(`^${u}:([^:]*):`, 'm').exec(shadow)?.[1] ?? '';
    assert.ok(passwordMatches(hashOf('alice'), 's3cret pw'), `alice's hash verifies: ${hashOf('alice')}`);
    assert.ok(!passwordMatches(hashOf('alice'), 'wrong'), 'and a wrong password does not');
    assert.ok(passwordMatches(hashOf('root'), 'r00t'), `root's hash verifies: ${hashOf('root')}`);
    assert.equal(hashOf('bob'), '$6$saltsalt$7dQaGg0N0m6eZ0m1ZJ8o0aB8mhR5vG0dTRi0n8jvPyGmD0e2vJk7zT2W8TQ4Zlq5w9sZ0gO2b3sC5dE6fG7hH.', '--iscrypted is stored as given');
    assert.equal(fs.cat('/ostree/deploy/default/var/home/alice/.ssh/authorized_keys'), `${ALICE_KEY}\n`);
    assert.match(fs.ls('/ostree/deploy/default/var/home/alice/.ssh'), /100600 \(1\) +1000 +1000 .*authorized_keys/);
    assert.match(fs.cat(`${etc}/tmpfiles.d/basalt-root-ssh.conf`), new RegExp(Buffer.from(`${ROOT_KEY}\n`).toString('base64').replace(/[+/]/g, '.')));
    assert.match(fs.ls(`${etc}/systemd/system/multi-user.target.wants`), /hello\.service/);
    assert.doesNotMatch(fs.ls(`${etc}/systemd/system/multi-user.target.wants`), /bye\.service/);
    assert.match(fs.stat(`${etc}/systemd/system/multi-user.target.wants/hello.service`), /Fast link dest: "\/usr\/lib\/systemd\/system\/hello\.service"/);
    assert.equal(fs.cat(`${etc}/hostname`), 'node1.lan\n');
    assert.match(fs.stat(`${etc}/localtime`), /Fast link dest: "\.\.\/usr\/share\/zoneinfo\/Europe\/Paris"/);
    assert.equal(fs.cat(`${etc}/locale.conf`), 'LANG=de_DE.UTF-8\n');
    assert.equal(fs.cat(`${etc}/vconsole.conf`), 'KEYMAP=de\n');
    assert.match(fs.cat(`${etc}/systemd/network/20-kickstart-0-enp1s0.network`), /\[Match\]\nName=enp1s0\n\n\[Network\]\nDHCP=yes/);
    assert.equal(fs.cat(`${etc}/post-marker`), 'post in chroot on node1.lan, var has seed\n');
    assert.equal(fs.cat(`${etc}/from-pre`), 'pre ran\n');
    assert.equal(fs.cat(`${etc}/post-resolver`), 'resolver\n', '%post had the installer\'s resolv.conf');
    assert.doesNotMatch(fs.ls(`${fs.dep}/run`), /systemd/, 'nothing of the tmpfs on /run stays');
    assert.equal(fs.cat(`${etc}/saw-sysroot`), 'sysroot\n');
    assert.doesNotMatch(fs.ls(`${fs.dep}/tmp`), /ks-script/, 'the %post script is removed');
    assert.match(fs.cat(`${fs.dep}.origin`), /^image=registry\.lan:5000\/tiny\/os:1$/m);
    const mounts = await readFile('/proc/self/mounts', 'utf8');
    assert.doesNotMatch(mounts, /\/mnt\/sysimage|basalt-to-disk/, 'every %post mount is gone');
  } finally {
    await rm(work, { recursive: true, force: true });
    console.log(`[time] kickstart --embedded-image install: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
});

test('install kickstart from a loopback registry (--url, --registries-conf, policy): xfs root of a fixed size, locked root, crypted user', async () => {
  for (const t of ['ostree', 'mkfs.xfs', 'xfs_repair', 'fallocate', 'mkfs.vfat', 'sfdisk', 'useradd', 'usermod', 'openssl', 'mount', 'docker-registry']) requireTool(t);
  const started = Date.now();
  const work = await tempDir('ks-registry');
  const registry = await startRegistry();
  const mnt = join(work, 'mnt');
  let mounted = false;
  try {
    const image = await tinyKickstartOs(work);
    basaltOk(['image', 'copy', image, `docker://${registry.host}/tiny/os:1`, '--dest-tls-verify=false']);
    const conf = join(work, 'registries.conf');
    await writeFile(conf, `[[registry]]\nlocation = "${registry.host}"\ninsecure = true\n`);
    const policy = join(work, 'policy.json');
    await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    const disk = join(work, 'disk.raw');
    // Old bytes where the root partition goes: the xfs placed there must not read them (its log would).
    run('sh', ['-c', `head -c ${512 * 1024 * 1024} /dev/zero | tr '\\0' '\\245' > ${disk} && truncate -s 1G ${disk}`]);
    const hash = run('openssl', ['passwd', '-6', '-salt', 'kstest', '-stdin'], { input: 'carol-pw\n' }).trim();
    const ks = join(work, 'ks.cfg');
    await writeFile(ks, `ostreecontainer --url=${registry.host}/tiny/os:1 --stateroot=default
ignoredisk --only-use=${disk}
clearpart --all
part / --size=400 --fstype=xfs
user --name=carol --password=${hash} --iscrypted
rootpw --lock
%post --erroronfail --interpreter=/usr/bin/sh
echo from-registry > /etc/post-marker
%end
poweroff
`);
    const r = basalt(['install', 'kickstart', ks, '--registries-conf', conf, '--policy', policy, '--no-reboot', '--format', 'json']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { plan: { source: string; updateSource: string }; disk: { target: { path: string } }; scripts: { exitCode: number }[] };
    assert.equal(out.plan.source, `docker://${registry.host}/tiny/os:1`);
    assert.equal(out.disk.target.path, disk);
    assert.deepEqual(out.scripts.map((s) => s.exitCode), [0]);
    assert.match(registry.logs(), /GET \/v2\/tiny\/os\/manifests\/1/);

    const [esp, root] = partitions(disk);
    assert.equal(esp?.name, 'EFI-SYSTEM');
    assert.equal(root?.size, 400 * 2048, 'part / --size=400 without --grow: exactly 400 MiB');
    assert.equal(run('blkid', ['-p', '-O', String((root?.start ?? 0) * 512), '-s', 'TYPE', '-o', 'value', disk]).trim(), 'xfs');
    const rootImg = join(work, 'root.img');
    run('dd', [`if=${disk}`, `of=${rootImg}`, 'bs=512', `skip=${root?.start}`, `count=${root?.size}`, 'status=none']);
    run('xfs_repair', ['-n', '-f', rootImg]); // exits non-zero on any inconsistency, the log included
    await rm(rootImg);
    run('mkdir', ['-p', mnt]);
    run('mount', ['-o', `ro,loop,offset=${(root?.start ?? 0) * 512},sizelimit=${(root?.size ?? 0) * 512}`, '-t', 'xfs', disk, mnt]);
    mounted = true;
    const deploy = join(mnt, 'ostree/deploy/default/deploy');
    const dep = run('ls', [deploy]).split('\n').find((n) => /^[0-9a-f]{64}\.0$/.test(n));
    assert.ok(dep);
    const etc = join(deploy, dep, 'etc');
    const shadow = await readFile(join(etc, 'shadow'), 'utf8');
    assert.match(shadow, /^root:!/m, 'rootpw --lock: the password is locked');
    assert.ok(shadow.includes(`carol:${hash}:`), 'the --iscrypted hash is stored as given');
    assert.ok(passwordMatches(hash, 'carol-pw'));
    assert.equal(await readFile(join(etc, 'post-marker'), 'utf8'), 'from-registry\n');
    assert.match(await readFile(join(deploy, `${dep}.origin`), 'utf8'), new RegExp(`^image=${registry.host.replace(/\./g, '\\.')}/tiny/os:1$`, 'm'));
  } finally {
    if (mounted) run('umount', [mnt]);
    await registry.stop();
    await rm(work, { recursive: true, force: true });
    console.log(`[time] kickstart --url install from a registry (xfs): ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
});

test('install kickstart failure paths leave the disk byte-identical: unreachable registry, too-small disk, failing %pre, boot medium, bad kickstart, data without clearpart, missing zone or unit, non-bootable image', async () => {
  for (const t of ['ostree', 'mkfs.ext4', 'mkfs.vfat']) requireTool(t);
  const started = Date.now();
  const work = await tempDir('ks-fail');
  try {
    const image = await tinyKickstartOs(work);
    const disk = join(work, 'disk.raw');
    await oldDisk(disk, 512 * 1024 ** 2);
    const before = await sha256(disk);
    const ks = join(work, 'ks.cfg');
    const attempt = async (text: string, args: string[], status: number, re: RegExp): Promise<void> => {
      await writeFile(ks, text);
      const r = basalt(['install', 'kickstart', ks, '--no-reboot', ...args]);
      assert.equal(r.status, status, `${r.stderr}${r.stdout}`);
      assert.match(r.stderr, re);
      assert.equal(await sha256(disk), before, `the disk is untouched after: ${r.stderr}`);
    };
    const base = (extra = '', url = 'registry.lan:5000/tiny/os:1'): string => `ostreecontainer --url=${url} --no-signature-verification\nignoredisk --only-use=${disk}\nclearpart --all --initlabel\npart / --grow\n${extra}reboot\n`;

    const port = await freePort();
    await attempt(base('', `127.0.0.1:${port}/tiny/os:1`), ['--tls-verify=false'], 7, /error: .*127\.0\.0\.1:\d+/);
    const small = join(work, 'small.raw');
    await oldDisk(small, 64 * 1024 ** 2);
    const smallBefore = await sha256(small);
    await writeFile(ks, base().replace(disk, small));
    const r = basalt(['install', 'kickstart', ks, '--no-reboot', '--embedded-image', image]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /error: disk .*small\.raw is too small: 64(\.0)? MiB, the install needs \d/);
    assert.equal(await sha256(small), smallBefore);
    await attempt(base('%pre --erroronfail\necho pre-output; exit 3\n%end\n'), ['--embedded-image', image], 10, /error: %pre at .*ks\.cfg:5 failed \(exit 3\) and has --erroronfail:\npre-output/);
    await attempt(base(), ['--embedded-image', image, '--boot-medium', disk], 2, /error: .*disk .*disk\.raw is the installer's boot medium/);
    await attempt(base('autopart\n'), ['--embedded-image', image], 5, /error: .*ks\.cfg:5: autopart is not a kickstart directive basalt supports/);
    await attempt(base().replace('clearpart --all --initlabel\n', ''), ['--embedded-image', image], 2, /holds data in its first MiB .* the kickstart does not clear it/);
    await attempt(base('timezone Mars/Olympus\n'), ['--embedded-image', image], 5, /error: timezone Mars\/Olympus: the image has no \/usr\/share\/zoneinfo\/Mars\/Olympus/);
    await attempt(base('services --enabled=nosuch.service\n'), ['--embedded-image', image], 5, /error: services --enabled: systemctl enable nosuch\.service in the new system failed/);
    await mkdir(join(work, 'nokernel/etc'), { recursive: true });
    await writeFile(join(work, 'nokernel/etc/motd'), 'hi\n');
    basaltOk(['image', 'pack', join(work, 'nokernel'), '-t', `oci:${join(work, 'nokernel-layout')}:1`]);
    await writeFile(ks, base());
    const nk = basalt(['install', 'kickstart', ks, '--no-reboot', '--embedded-image', `oci:${join(work, 'nokernel-layout')}:1`]);
    assert.notEqual(nk.status, 0);
    assert.match(nk.stderr, /error: .*(kernel|vmlinuz|modules)/i);
    assert.equal(await sha256(disk), before, 'a non-bootable image leaves the disk untouched');
  } finally {
    await rm(work, { recursive: true, force: true });
    console.log(`[time] kickstart failure paths: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
});

test('install kickstart onto a block device (a loop device); naming the disk that holds the boot medium\'s partition is refused, untouched', async () => {
  for (const t of ['losetup', 'lsblk', 'partx', 'sfdisk', 'e2fsck', 'debugfs']) requireTool(t);
  const started = Date.now();
  const work = await tempDir('ks-device');
  const loops: string[] = [];
  const attach = (file: string): string => {
    const dev = run('losetup', ['-f', '--show', '-P', file]).trim();
    loops.push(dev);
    return dev;
  };
  try {
    const image = await tinyKickstartOs(work);
    // The "installer stick": a partitioned device; the installer booted from its first partition.
    const stickFile = join(work, 'stick.img');
    execFileSync('truncate', ['-s', '64M', stickFile]);
    const stick = attach(stickFile);
    run('sfdisk', ['-q', stick], { input: 'label: gpt\n,32M\n' });
    run('partx', ['-u', stick]);
    const bootPart = `${stick}p1`;
    execFileSync('truncate', ['-s', '512M', join(work, 'target.img')]);
    const target = attach(join(work, 'target.img'));
    const stickBefore = run('sh', ['-c', `head -c 67108864 ${stick} | sha256sum`]);
    const ks = join(work, 'ks.cfg');

    // Naming the stick is refused, untouched.
    await writeFile(ks, `ostreecontainer --url=registry.lan:5000/tiny/os:1 --no-signature-verification\nignoredisk --only-use=${stick.replace('/dev/', '')}\nclearpart --all\npart / --grow\n`);
    const refused = basalt(['install', 'kickstart', ks, '--embedded-image', image, '--boot-medium', bootPart, '--no-reboot']);
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`disk ${stick.replace('/dev/', '')} is the installer's boot medium \\(${bootPart}\\)`));
    assert.equal(run('sh', ['-c', `head -c 67108864 ${stick} | sha256sum`]), stickBefore);

    // The target named by its /dev path; the boot medium's disk is never written.
    await writeFile(ks, `ostreecontainer --url=registry.lan:5000/tiny/os:1 --no-signature-verification\nignoredisk --only-use=${target}\npart / --grow --fstype=ext4\nuser --name=dora --password=x --plaintext\n`);
    const r = basalt(['install', 'kickstart', ks, '--embedded-image', image, '--boot-medium', bootPart, '--no-reboot']);
    assert.equal(r.status, 0, r.stderr);
    const [esp, root, more] = partitions(target);
    assert.equal(more, undefined);
    assert.equal(esp?.name, 'EFI-SYSTEM');
    assert.equal(root?.name, 'root');
    run('e2fsck', ['-fn', `${target}p2`]);
    const dep = /([0-9a-f]{64}\.0)/.exec(run('debugfs', ['-R', 'ls /ostree/deploy/default/deploy', `${target}p2`]))?.[1];
    assert.ok(dep);
    assert.match(run('debugfs', ['-R', `cat /ostree/deploy/default/deploy/${dep}/etc/passwd`, `${target}p2`]), /^dora:x:1000:/m);
    assert.equal(run('sh', ['-c', `head -c 67108864 ${stick} | sha256sum`]), stickBefore, 'the boot medium is untouched');
  } finally {
    for (const l of loops) run('losetup', ['-d', l]);
    await rm(work, { recursive: true, force: true });
    console.log(`[time] kickstart onto a loop device: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
});
