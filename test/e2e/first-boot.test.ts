import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basaltOk } from '../harness/cli.js';
import { baseImage } from '../harness/base-image.js';
import { freePort, sshKeyPair, sshRun, timeBudget, waitForSsh, withVm } from '../harness/vm.js';
import { tempDir } from '../harness/tools.js';

/**
 * First boot, through OVMF and systemd-boot from a basalt disk (never -kernel): the base
 * image basalt built from Debian packages, installed on ostree by basalt, customised by a
 * bootc-image-builder config.toml.
 */
test('base image → basalt disk --type qcow2 --rootfs xfs --config → boots; ssh, kargs, read-only /usr, entry, status', { timeout: 40 * 60_000 }, async () => {
  const prepared = timeBudget('first boot: base image (cached per machine) + disk');
  const image = await baseImage();
  const work = await tempDir('first-boot');
  const key = await sshKeyPair();
  const config = join(work, 'config.toml');
  await writeFile(config, `[[customizations.user]]\nname = "alice"\npassword = "bob"\nkey = "${key.publicLine}"\ngroups = ["sudo"]\n\n[customizations.kernel]\nappend = "console=ttyS0"\n`);
  const out = join(work, 'out');
  basaltOk(['disk', image, '--type', 'qcow2', '--rootfs', 'xfs', '--config', config, '-o', out, '--target-imgref', 'docker://registry.example:5000/os/base:latest']);
  const digest = basaltOk(['image', 'digest', image]).trim();
  prepared();
  const port = await freePort();
  await withVm('first boot: power-on to checks done', { drives: [join(out, 'disk.qcow2')], snapshot: true, memoryMiB: 2048, cpus: 2, portForwards: [{ host: port, guest: 22 }] }, async (vm) => {
    await vm.waitForSerial(/login:/, 420_000);
    await waitForSsh(port, 'alice', key.privateKey, 90_000);
    const ssh = (cmd: string): string => sshRun(port, 'alice', key.privateKey, cmd);
    assert.match(ssh('id'), /\(sudo\)/);
    const cmdline = ssh('cat /proc/cmdline');
    assert.match(cmdline, /console=ttyS0/);
    assert.match(cmdline, /basalt\.deployment=default\/[0-9a-f]{64}\.0/);
    assert.match(cmdline, /ostree=\/ostree\/boot\.\d\//);
    // The root is the xfs basalt made through a loop mount (the appliance test boots ext4).
    assert.match(ssh('findmnt -n -o FSTYPE /sysroot'), /^xfs$/m);
    assert.match(ssh('touch /usr/should-fail 2>&1 || echo refused'), /refused|Read-only/);
    assert.match(ssh('echo bob | sudo -S -p "" sh -c "touch /etc/basalt-test && touch /var/basalt-test && echo writable"'), /writable/);
    // The ESP is mounted at /boot/efi (the fstab line install writes), so bootctl sees the entries.
    assert.match(ssh('echo bob | sudo -S -p "" bootctl status 2>/dev/null'), /Product: systemd-boot/);
    assert.match(ssh('echo bob | sudo -S -p "" bootctl list 2>/dev/null'), /id: basalt-default-[0-9a-f]{12}\.0\.conf/);
    // efivarfs reports size 0, so the variable is read through a pipe (4 attribute bytes, then UTF-16).
    const selected = ssh(`echo bob | sudo -S -p "" sh -c 'cat /sys/firmware/efi/efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f | tail -c +5 | tr -d "\\\\000"'`);
    assert.match(selected, /^basalt-default-[0-9a-f]{12}\.0\.conf$/);
    const status = JSON.parse(ssh('echo bob | sudo -S -p "" basalt status --format json')) as { spec: { image: { image: string } }; status: { booted: { image: { imageDigest: string } } } };
    assert.equal(status.status.booted.image.imageDigest, digest);
    assert.equal(status.spec.image.image, 'registry.example:5000/os/base:latest');
  });
});
