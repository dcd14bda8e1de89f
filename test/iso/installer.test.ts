/**
 * `basalt iso IMAGE --kickstart ks.cfg -o install.iso` without a VM: the structure of the ISO
 * built from the cached base image (read back with basalt iso info/ls and with xorriso, the
 * ecosystem's reader; the GPT with sgdisk; the EFI image with mtools), and a bad kickstart
 * refused before anything is written. The boot itself is test/e2e/installer-iso.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basalt, basaltOk } from '../harness/cli.js';
import { baseImage } from '../harness/base-image.js';
import { requireTool, run, SHARED, tempDir } from '../harness/tools.js';
import { timeBudget } from '../harness/vm.js';

const KICKSTART = join(SHARED, 'examples', 'appliance', 'mykickstart.ks');

interface IsoInfo {
  volumeId: string;
  rockRidge: boolean;
  bootCatalog: { entries: { platform: string; bootable: boolean; mediaType: number; lba: number; sectorCount: number }[] } | null;
  mbr: { type: number; bootable: boolean }[];
  gpt: { partitions: { typeGuid: string; firstLba: number; lastLba: number }[] } | null;
}

test('an installer ISO from the base image: El Torito BIOS + UEFI, hybrid GPT, kernel, initrd, squashfs root, kickstart', { timeout: 40 * 60_000 }, async () => {
  for (const t of ['xorriso', 'sgdisk', 'mdir', 'unsquashfs', 'lsinitrd']) requireTool(t);
  const base = await baseImage();
  const work = await tempDir('installer-iso');
  const ks = join(work, 'ks.cfg');
  await writeFile(ks, (await readFile(KICKSTART, 'utf8')).replace('REGISTRY', '10.0.2.2:5000'));
  const iso = join(work, 'install.iso');
  const clock = timeBudget('installer iso: build from the base image');
  const report = JSON.parse(basaltOk(['iso', base, '--kickstart', ks, '-o', iso, '--json'])) as { bytes: number; volumeId: string; kernelVersion: string; rootfsBytes: number; initrdBytes: number; seconds: Record<string, number> };
  clock();
  console.log(`[installer-iso] ${JSON.stringify(report)}`);
  assert.equal((await stat(iso)).size, report.bytes);
  assert.equal(report.bytes % (1024 * 1024), 0, 'padded to whole MiB for USB sticks');

  const info = JSON.parse(basaltOk(['iso', 'info', iso, '--format', 'json'])) as IsoInfo;
  assert.equal(info.volumeId, 'BASALT-INSTALLER');
  assert.equal(info.rockRidge, true);
  const entries = info.bootCatalog?.entries ?? [];
  assert.deepEqual(entries.map((e) => [e.platform, e.bootable, e.mediaType]), [['bios', true, 0], ['uefi', true, 0]]);
  assert.deepEqual(info.mbr.map((p) => [p.type, p.bootable]), [[0xee, true]]);
  const esp = info.gpt?.partitions ?? [];
  assert.equal(esp.length, 1);
  assert.equal(esp[0]?.typeGuid, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
  const uefi = entries[1] as { lba: number; sectorCount: number };
  assert.equal(esp[0]?.firstLba, uefi.lba * 4, 'the ESP partition is the El Torito UEFI image');
  assert.equal((esp[0]?.lastLba ?? 0) - (esp[0]?.firstLba ?? 0) + 1, uefi.sectorCount);

  const files = (JSON.parse(basaltOk(['iso', 'ls', '-R', iso, '/', '--format', 'json'])) as { path: string; type: string; size: number; sector: number }[]);
  const byPath = new Map(files.map((f) => [f.path, f]));
  for (const p of ['/live/vmlinuz', '/live/initrd.img', '/live/rootfs.sfs', '/ks.cfg', '/boot/grub/grub.cfg', '/boot/grub/i386-pc/eltorito.img', '/boot/grub/efiboot.img', '/EFI/BOOT/BOOTX64.EFI', '/basalt/installer.conf'])
    assert.ok(byPath.get(p)?.type === 'file', `${p} is on the ISO`);
  assert.equal(byPath.get('/boot/grub/i386-pc/eltorito.img')?.sector, entries[0]?.lba, 'the BIOS entry boots eltorito.img');
  assert.equal(byPath.get('/boot/grub/efiboot.img')?.sector, uefi.lba, 'the UEFI entry boots efiboot.img');
  assert.ok(!byPath.has('/image'), 'no embedded image without --embed');
  assert.equal(basaltOk(['iso', 'extract', iso, '/ks.cfg', '-']), await readFile(ks, 'utf8'));
  const grubCfg = basaltOk(['iso', 'extract', iso, '/boot/grub/grub.cfg', '-']);
  assert.match(grubCfg, /linux \/live\/vmlinuz root=basalt-live:BASALT-INSTALLER systemd\.unit=basalt-installer\.target /);
  assert.match(basaltOk(['iso', 'extract', iso, '/basalt/installer.conf', '-']), /^embedded=$/m);

  // The ecosystem's readers agree: xorriso lists the same tree and boot images, sgdisk the GPT.
  const xorriso = run('xorriso', ['-indev', iso, '-report_el_torito', 'plain', '-find', '/', '-type', 'f']);
  for (const p of ['/live/rootfs.sfs', '/ks.cfg', '/boot/grub/efiboot.img']) assert.match(xorriso, new RegExp(`'${p}'`));
  assert.match(xorriso, /El Torito boot img :\s+1\s+BIOS\s+y\s+none/);
  assert.match(xorriso, /El Torito boot img :\s+2\s+UEFI\s+y\s+none/);
  assert.match(run('sgdisk', ['-v', iso]), /No problems found/);
  const efi = join(work, 'efiboot.img');
  basaltOk(['iso', 'extract', iso, '/boot/grub/efiboot.img', efi]);
  assert.match(run('mdir', ['-i', efi, '::/EFI/BOOT'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } }), /BOOTX64\s+EFI/);

  // The root: the image's own, with the installer target and service, timers masked.
  const sfs = join(work, 'rootfs.sfs');
  basaltOk(['iso', 'extract', iso, '/live/rootfs.sfs', sfs]);
  const listing = run('unsquashfs', ['-lls', sfs, 'etc/systemd/system', 'usr/libexec/basalt-installer', 'usr/bin/basalt']);
  assert.match(listing, /etc\/systemd\/system\/basalt-installer\.target/);
  assert.match(listing, /etc\/systemd\/system\/basalt-installer\.service/);
  assert.match(listing, /etc\/systemd\/system\/basalt-upgrade\.timer -> \/dev\/null/);
  assert.match(listing, /usr\/libexec\/basalt-installer/);
  const initrd = join(work, 'initrd.img');
  basaltOk(['iso', 'extract', iso, '/live/initrd.img', initrd]);
  const modules = run('lsinitrd', ['--mod', initrd]);
  assert.match(modules, /^basalt-live$/m);
  assert.doesNotMatch(modules, /^ostree$/m);
  const initrdFiles = run('lsinitrd', [initrd]);
  for (const m of ['squashfs', 'overlay', 'isofs']) assert.match(initrdFiles, new RegExp(`/${m}\\.ko`), `${m} module in the initramfs`);
  assert.match(initrdFiles, /system-generators\/basalt-live-generator/);
  assert.match(initrdFiles, /usr\/sbin\/basalt-live-setup/);
  assert.match(initrdFiles, /hooks\/cmdline\/90-basalt-live-cmdline\.sh/);
});

test('a bad kickstart is refused at build time naming file:line, and nothing is written', async () => {
  const work = await tempDir('installer-iso-bad');
  const ks = join(work, 'bad.ks');
  await writeFile(ks, 'text\nostreecontainer --url 10.0.2.2:5000/a/b:latest\nautopart --type=lvm\n');
  const iso = join(work, 'install.iso');
  // The image is never opened: the kickstart is checked first, so a missing image does not matter.
  const r = basalt(['iso', 'oci:/nonexistent/layout:x', '--kickstart', ks, '-o', iso]);
  assert.equal(r.status, 5, r.stderr);
  assert.match(r.stderr, new RegExp(`${ks.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: .*autopart`));
  assert.deepEqual(await readdir(work), ['bad.ks'], 'no ISO and no temp file');

  const missing = basalt(['iso', 'oci:/nonexistent/layout:x', '--kickstart', join(work, 'nope.ks'), '-o', iso]);
  assert.equal(missing.status, 3, missing.stderr);
  assert.match(missing.stderr, /nope\.ks does not exist/);
  const noOutput = basalt(['iso', 'oci:/nonexistent/layout:x', '--kickstart', ks]);
  assert.equal(noOutput.status, 2, noOutput.stderr);
  assert.match(noOutput.stderr, /needs -o FILE/);
  assert.deepEqual(await readdir(work), ['bad.ks']);
});
