/**
 * End to end without ostree: a GPT disk made by createDiskImage (ESP with systemd-boot and a
 * loader entry for a real Debian kernel, plus an ext4 root), converted to qcow2, booted
 * under QEMU through OVMF and systemd-boot — never -kernel. The initramfs prints a marker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createDiskImage, diskIdentifiers } from '../../src/media/disk-image.js';
import { convertDisk } from '../../src/media/convert.js';
import { debianKernel, markerInitramfs, Markers, timeBudget, withVm } from '../harness/vm.js';
import { requireTool, tempDir } from '../harness/tools.js';

const SYSTEMD_BOOT = '/usr/lib/systemd/boot/efi/systemd-bootx64.efi';

test('a disk from createDiskImage boots a Debian kernel through OVMF and systemd-boot (qcow2)', { timeout: 600_000 }, async () => {
  for (const t of ['qemu-system-x86_64', 'mkfs.vfat', 'mcopy', 'mkfs.ext4', 'busybox']) requireTool(t);
  const work = await tempDir('boot');
  try {
    const kernel = await debianKernel();
    const seed = 'boot-test';
    const ids = diskIdentifiers(seed);
    const esp = join(work, 'esp');
    await mkdir(join(esp, 'EFI/BOOT'), { recursive: true });
    await mkdir(join(esp, 'loader/entries'), { recursive: true });
    await copyFile(SYSTEMD_BOOT, join(esp, 'EFI/BOOT/BOOTX64.EFI'));
    await copyFile(kernel, join(esp, 'vmlinuz'));
    await writeFile(join(esp, 'initrd.img'), await markerInitramfs(Markers.initramfsReached));
    await writeFile(join(esp, 'loader/loader.conf'), 'timeout 0\n');
    await writeFile(join(esp, 'loader/entries/basalt-test.conf'), `title basalt boot test\nlinux /vmlinuz\ninitrd /initrd.img\noptions console=ttyS0 root=PARTUUID=${ids.rootPartUuid} panic=-1\n`);
    const root = join(work, 'root');
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'etc/os-release'), 'ID=basalt-test\n');

    const made = timeBudget('boot test: disk creation (raw + qcow2)');
    const disk = await createDiskImage({ path: join(work, 'disk.raw'), espDir: esp, rootDir: root, espSize: 64 * 1024 * 1024, rootLabel: 'root', rootFsType: 'ext4', seed });
    await convertDisk(disk.path, 'qcow2', join(work, 'disk.qcow2'));
    made();
    assert.equal(disk.partitions[1]?.partUuid, ids.rootPartUuid);

    await withVm('boot test: OVMF → systemd-boot → kernel → initramfs marker', { drives: [join(work, 'disk.qcow2')], memoryMiB: 1024, serialLog: join(work, 'serial.log') }, async (vm) => {
      const untilMarker = timeBudget('boot test: power-on to marker');
      const m = await vm.waitForSerial(new RegExp(`${Markers.initramfsReached}[\\s\\S]*cmdline: ([^\\r\\n]*)\\r?\\n`), 300_000);
      untilMarker(); // the regex waits for the line's end: serial text arrives in pieces
      if (process.env.BASALT_DEBUG_SERIAL) console.log(vm.serialText());
      assert.match(m[1] ?? '', new RegExp(`root=PARTUUID=${ids.rootPartUuid}`), 'the kernel got its arguments from the loader entry');
      assert.equal(await vm.exited, 0, 'the guest powered itself off');
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
