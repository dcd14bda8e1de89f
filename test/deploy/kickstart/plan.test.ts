import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { checkDiskSize, describeDisk, parseKickstart, planKickstart, selectTargetDisk, systemDisks } from '../../../src/deploy/kickstart/index.js';
import { isBasaltError, type ErrorKind } from '../../../src/oci/errors.js';
import { requireTool, tempDir } from '../../harness/tools.js';
import { oldDisk } from './fixtures.js';

/** Disk selection and the plan, on disk image files standing in for disks (and lsblk's real list). */

async function refused(p: Promise<unknown> | (() => unknown), kind: ErrorKind, re: RegExp): Promise<void> {
  await assert.rejects(async () => (typeof p === 'function' ? p() : p), (e: unknown) => {
    assert.ok(isBasaltError(e, kind), String(e));
    assert.match(e.message, re);
    return true;
  });
}

const ks = (body: string): ReturnType<typeof parseKickstart> => parseKickstart(`ostreecontainer --url=r.lan/os:1\n${body}\n`, 'ks.cfg');

test('disk selection: named disks in order, the boot medium left out or refused, no disk, data needs clearpart', async () => {
  requireTool('lsblk');
  const work = await tempDir('ks-plan');
  const a = join(work, 'a.raw');
  const b = join(work, 'b.raw');
  execFileSync('truncate', ['-s', '2G', a]);
  await oldDisk(b, 4 * 1024 ** 3);

  const first = await selectTargetDisk(ks(`ignoredisk --only-use=${a},${b}\npart / --grow`));
  assert.equal(first.target.path, a);
  assert.equal(first.target.kind, 'file');
  assert.equal(first.target.size, 2 * 1024 ** 3);
  assert.equal(first.holds, undefined);
  assert.deepEqual(first.excluded, [{ name: b, why: `not used: basalt installs onto one disk (${a})` }]);

  // part --ondisk wins over ignoredisk's order, and must be one of its disks.
  await refused(selectTargetDisk(ks(`ignoredisk --only-use=${b}\nclearpart --all\npart / --grow --ondisk=${a}`)), 'invalid', /part --ondisk=.*a\.raw is not in ignoredisk --only-use/);
  const onB = await selectTargetDisk(ks(`ignoredisk --only-use=${a},${b}\nclearpart --all --initlabel\npart / --grow --ondisk=${b}`));
  assert.equal(onB.target.path, b);
  assert.equal(onB.holds, 'data in its first MiB (a filesystem or other signature)');

  // A disk holding data is written only when clearpart covers it.
  await refused(selectTargetDisk(ks(`ignoredisk --only-use=${b}\npart / --grow`)), 'usage', /b\.raw holds data in its first MiB .* the kickstart does not clear it/);
  await refused(selectTargetDisk(ks(`ignoredisk --only-use=${b}\nclearpart --drives=${a}\npart / --grow`)), 'usage', /does not clear it/);
  assert.equal((await selectTargetDisk(ks(`ignoredisk --only-use=${b}\nclearpart --drives=${b}\npart / --grow`))).target.path, b);

  // The boot medium: refused when named, left out of the machine's disks otherwise.
  await refused(selectTargetDisk(ks(`ignoredisk --only-use=${a}\npart / --grow`), { bootMedium: a }), 'usage', /a\.raw is the installer's boot medium .*refusing to write it/);
  const inventory = async () => [await describeDisk(a), await describeDisk(b)];
  const skipBoot = await selectTargetDisk(ks('clearpart --all --initlabel\npart / --grow'), { bootMedium: a, inventory });
  assert.equal(skipBoot.target.path, b);
  assert.deepEqual(skipBoot.excluded, [{ name: a, why: 'the boot medium' }]);
  await refused(selectTargetDisk(ks('part / --grow'), { bootMedium: a, inventory: async () => [await describeDisk(a)] }), 'not-found', /^no disk to install onto \(left out: .*a\.raw, the boot medium\)/);
  await refused(selectTargetDisk(ks('part / --grow'), { inventory: async () => [] }), 'not-found', /^no disk to install onto$/);
  await refused(selectTargetDisk(ks(`ignoredisk --only-use=${join(work, 'missing.raw')}\npart / --grow`)), 'not-found', /disk .*missing\.raw does not exist/);

  // Too small: both sizes named.
  const small = await describeDisk(a);
  await refused(async () => checkDiskSize(small, 3 * 1024 ** 3), 'usage', /a\.raw is too small: 2(\.0)? GiB, the install needs 3(\.0)? GiB/);
  checkDiskSize(small, 2 * 1024 ** 3);

  // lsblk's list is real: whole, writable disks with sizes.
  for (const d of await systemDisks()) {
    assert.match(d.path, /^\/dev\//);
    assert.ok(d.size > 0 && d.kind === 'device', JSON.stringify(d));
  }
  await rm(work, { recursive: true, force: true });
});

test('the plan: sources, layout, settings, scripts, finish', async () => {
  const plan = planKickstart(parseKickstart(`ostreecontainer --url=reg.lan/os:2 --stateroot=fleet
ignoredisk --only-use=vda
clearpart --all
part /boot/efi --size=600
part / --size=4096 --grow --fstype=xfs
user --name=alice --password=x --plaintext
rootpw --lock
sshkey --username=root "ssh-ed25519 AAAA root@x"
network --bootproto=dhcp
services --enabled=a --disabled=b
bootloader --append="quiet splash"
%post --nochroot --erroronfail
true
%end
halt
`, 'ks.cfg'), { embeddedImage: 'oci:/run/install/repo/image:2' });
  assert.equal(plan.source, 'oci:/run/install/repo/image:2');
  assert.equal(plan.updateSource, 'docker://reg.lan/os:2');
  assert.equal(plan.stateroot, 'fleet');
  assert.deepEqual(plan.disks, ['vda']);
  assert.equal(plan.clear, 'all');
  assert.deepEqual(plan.esp, { sizeBytes: 600 * 1024 * 1024 });
  assert.deepEqual(plan.root, { filesystem: 'xfs', sizeBytes: 4096 * 1024 * 1024, grow: true });
  assert.equal(plan.rootPassword, 'locked');
  assert.deepEqual(plan.sshKeys, ['root']);
  assert.deepEqual(plan.networks, ['any wired interface: DHCP']);
  assert.deepEqual(plan.kargs, ['quiet', 'splash']);
  assert.deepEqual(plan.scripts, [{ kind: 'post', line: 12, interpreter: '/bin/sh', nochroot: true, errorOnFail: true }]);
  assert.equal(plan.finish, 'halt');
  assert.equal(planKickstart(ks('part / --grow')).source, 'docker://r.lan/os:1');
  assert.equal(planKickstart(parseKickstart('ostreecontainer --url=/srv/os --transport=oci\npart / --grow\n', 'k')).source, 'oci:/srv/os');
  assert.equal(planKickstart(parseKickstart('ostreecontainer --url=/srv/os.tar --transport=oci-archive\npart / --grow\n', 'k')).source, 'oci-archive:/srv/os.tar');
  await refused(async () => planKickstart(ks('part / --grow\npart /boot/efi --size=10')), 'invalid', /^ks\.cfg:3: part \/boot\/efi --size=10 is below the 64 MiB an ESP needs/);
});
