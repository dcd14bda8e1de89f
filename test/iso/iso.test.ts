/**
 * basalt iso info|ls|extract|remaster against ISOs made by grub-mkrescue and by xorriso with
 * lorax's arguments, checked with the tools of the ecosystem: xorriso reads the results,
 * checkisomd5 verifies the checksum, sgdisk the GPT, mtools the EFI image.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, open, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { basalt, basaltOk } from '../harness/cli.js';
import { requireTool, run, SHARED, withTempDir } from '../harness/tools.js';
import { GRUB_VOLID, LORAX_VOLID, grubMkrescueIso, loraxStyleIso } from './fixtures.js';

const KICKSTART = join(SHARED, 'examples', 'appliance', 'mykickstart.ks');

/** The 32-byte-plus dates of the PVD (creation, modification, expiration, effective). */
async function pvdDates(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(881 - 813);
    await fh.read(buf, 0, buf.length, 16 * 2048 + 813);
    return buf;
  } finally {
    await fh.close();
  }
}

async function applicationUse(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(512);
    await fh.read(buf, 0, 512, 16 * 2048 + 883);
    return buf;
  } finally {
    await fh.close();
  }
}

/** What xorriso itself extracts from an image (the independent reader). */
function xorrisoExtract(iso: string, path: string, out: string): Buffer {
  run('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', path, out]);
  return readFileSync(out);
}

function xorrisoPaths(iso: string): string[] {
  const text = run('xorriso', ['-indev', iso, '-find', '/', '-exec', 'echo']);
  return text.split('\n').map((l) => l.replace(/^'|'$/g, '')).filter((l) => l.startsWith('/') && l !== '/').sort();
}

function checkisomd5(iso: string): number {
  return spawnSync('checkisomd5', [iso], { encoding: 'utf8' }).status ?? -1;
}

test('iso info/ls/extract read a grub-mkrescue image the way xorriso does', async () => {
  requireTool('xorriso');
  const iso = await grubMkrescueIso();
  const info = JSON.parse(basaltOk(['iso', 'info', iso, '--format', 'json'])) as {
    volumeId: string; rockRidge: boolean; bootCatalog: { entries: { platform: string; lba: number }[] }; mbr: { type: number }[]; gpt: { partitions: { name: string }[] } | null;
  };
  assert.equal(info.volumeId, GRUB_VOLID);
  assert.equal(info.rockRidge, true);
  assert.deepEqual(info.bootCatalog.entries.map((e) => e.platform).sort(), ['bios', 'uefi']);
  assert.equal(info.mbr[0]?.type, 0xee);
  assert.ok(info.gpt?.partitions.some((p) => /EFI/.test(p.name)));
  const rows = JSON.parse(basaltOk(['iso', 'ls', '-R', iso, '/', '--format', 'json'])) as { path: string }[];
  assert.deepEqual(rows.map((r) => r.path).sort(), xorrisoPaths(iso));
  await withTempDir('iso-read', async (dir) => {
    const ours = basaltOk(['iso', 'extract', iso, '/boot/grub/grub.cfg', '-']);
    assert.equal(ours, xorrisoExtract(iso, '/boot/grub/grub.cfg', join(dir, 'x.cfg')).toString());
    basaltOk(['iso', 'extract', iso, '/boot', join(dir, 'boot')]);
    assert.deepEqual(await readFile(join(dir, 'boot', 'vmlinuz')), xorrisoExtract(iso, '/boot/vmlinuz', join(dir, 'k')));
  });
});

test('iso ls reads the Joliet tree and a volume id with spaces (lorax layout)', async () => {
  const iso = await loraxStyleIso();
  const info = JSON.parse(basaltOk(['iso', 'info', iso, '--format', 'json'])) as { volumeId: string; joliet: boolean; mbr: unknown[] };
  assert.equal(info.volumeId, LORAX_VOLID);
  assert.equal(info.joliet, true);
  assert.ok(info.mbr.length >= 1, 'isohybrid MBR partitions are read');
  const joliet = JSON.parse(basaltOk(['iso', 'ls', '--joliet', iso, '/images', '--format', 'json'])) as { path: string; size: number }[];
  const primary = JSON.parse(basaltOk(['iso', 'ls', iso, '/images', '--format', 'json'])) as { path: string; size: number }[];
  assert.deepEqual(joliet.map((r) => r.path), primary.map((r) => r.path));
  assert.ok(primary.some((r) => r.path === '/images/efiboot.img' && r.size === 4096 * 1024));
});

test('remaster of the grub-mkrescue image: kickstart and arguments in, checkisomd5 passes, dates and GPT hold', async () => {
  for (const t of ['xorriso', 'checkisomd5', 'implantisomd5', 'sgdisk']) requireTool(t);
  const iso = await grubMkrescueIso();
  await withTempDir('iso-remaster-grub', async (dir) => {
    const out = join(dir, 'out.iso');
    const report = JSON.parse(basaltOk(['iso', 'remaster', iso, out, '--ks', KICKSTART, '-c', 'basalt.test=1 rd.debug', '-r', 'quiet', '--format', 'json'])) as { md5: string; configs: { path: string; kernelLines: number }[] };
    assert.equal(checkisomd5(out), 0, 'checkisomd5 accepts the implanted checksum');
    // implantisomd5 --force over a copy writes exactly what basalt implanted while writing.
    const copy = join(dir, 'copy.iso');
    await copyFile(out, copy);
    run('implantisomd5', ['--force', copy]);
    assert.deepEqual(await applicationUse(out), await applicationUse(copy));
    assert.deepEqual(await pvdDates(out), await pvdDates(iso), 'the PVD dates are byte for byte the input\'s');
    assert.match(run('sgdisk', ['-v', out]), /No problems found/);
    const cfg = xorrisoExtract(out, '/boot/grub/grub.cfg', join(dir, 'grub.cfg')).toString();
    assert.match(cfg, new RegExp(`linux /boot/vmlinuz console=ttyS0 basalt\\.test=1 rd\\.debug inst\\.ks=hd:LABEL=${GRUB_VOLID}:/mykickstart\\.ks\\n`));
    assert.doesNotMatch(cfg, /quiet/);
    assert.deepEqual(xorrisoExtract(out, '/mykickstart.ks', join(dir, 'ks')), await readFile(KICKSTART));
    assert.ok(report.configs.some((c) => c.path === '/boot/grub/grub.cfg' && c.kernelLines === 1));
    // Unchanged data was not duplicated: the output grows by the new files and directories only.
    const grown = (await stat(out)).size - (await stat(iso)).size;
    assert.ok(grown > 0 && grown < 512 * 1024, `the output grew by ${grown} bytes`);
    // The kernel still reads identically through xorriso.
    assert.deepEqual(xorrisoExtract(out, '/boot/vmlinuz', join(dir, 'k1')), xorrisoExtract(iso, '/boot/vmlinuz', join(dir, 'k2')));
    // Remastering again replaces inst.ks instead of adding a second one.
    const again = join(dir, 'again.iso');
    basaltOk(['iso', 'remaster', out, again, '--ks', KICKSTART]);
    const cfg2 = xorrisoExtract(again, '/boot/grub/grub.cfg', join(dir, 'grub2.cfg')).toString();
    assert.equal(cfg2.match(/inst\.ks=/g)?.length, 1);
    assert.equal(checkisomd5(again), 0);
  });
});

test('remaster of the lorax layout: isolinux, both grub.cfg (in the ISO and inside efiboot.img), Joliet, volume id', async () => {
  for (const t of ['xorriso', 'checkisomd5', 'mtype']) requireTool(t);
  const iso = await loraxStyleIso();
  await withTempDir('iso-remaster-lorax', async (dir) => {
    const out = join(dir, 'out.iso');
    const report = JSON.parse(basaltOk(['iso', 'remaster', iso, out, '--ks', KICKSTART, '-c', 'basalt.test=1', '-V', 'NEW Vol 1', '-R', 'Install basalt', 'Deploy basalt', '--format', 'json'])) as { efiImage: string };
    assert.equal(report.efiImage, 'edited in place');
    assert.equal(checkisomd5(out), 0);
    assert.deepEqual(await pvdDates(out), await pvdDates(iso));
    const info = JSON.parse(basaltOk(['iso', 'info', out, '--format', 'json'])) as { volumeId: string };
    assert.equal(info.volumeId, 'NEW Vol 1');
    assert.match(run('xorriso', ['-indev', out, '-pvd_info']), /Volume Id\s*:\s*NEW Vol 1/);
    const label = 'NEW\\\\x20Vol\\\\x201';
    const isolinux = xorrisoExtract(out, '/isolinux/isolinux.cfg', join(dir, 'isolinux.cfg')).toString();
    assert.match(isolinux, new RegExp(`append initrd=/images/pxeboot/initrd.img inst.stage2=hd:LABEL=${label} console=ttyS0 quiet basalt.test=1 inst.ks=hd:LABEL=${label}:/mykickstart.ks\\n`));
    assert.match(isolinux, /Deploy basalt test/);
    const grub = xorrisoExtract(out, '/EFI/BOOT/grub.cfg', join(dir, 'grub.cfg')).toString();
    assert.match(grub, /search --no-floppy --set=root -l 'NEW Vol 1'/);
    assert.match(grub, new RegExp(`linuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=${label} console=ttyS0 quiet basalt.test=1 inst.ks=hd:LABEL=${label}:/mykickstart.ks\\n`));
    // The copy inside the FAT image is edited the same way (read with mtools, not with basalt).
    const efiboot = join(dir, 'efiboot.img');
    xorrisoExtract(out, '/images/efiboot.img', efiboot);
    const inner = run('mtype', ['-i', efiboot, '::/EFI/BOOT/grub.cfg'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
    assert.equal(inner, grub);
    run('fsck.vfat', ['-n', efiboot]);
    // The Joliet tree sees the new file too.
    const joliet = JSON.parse(basaltOk(['iso', 'ls', '--joliet', out, '/', '--format', 'json'])) as { path: string }[];
    assert.ok(joliet.some((r) => r.path === '/mykickstart.ks'));
    // The El Torito images are where they were: isolinux's boot info table still holds.
    const before = JSON.parse(basaltOk(['iso', 'info', iso, '--format', 'json'])) as { bootCatalog: unknown };
    const after = JSON.parse(basaltOk(['iso', 'info', out, '--format', 'json'])) as { bootCatalog: unknown };
    assert.deepEqual(after.bootCatalog, before.bootCatalog);
  });
});

test('-a adds files and directories, -u adds updates.img, --no-md5sum leaves no checksum', async () => {
  const iso = await grubMkrescueIso();
  await withTempDir('iso-add', async (dir) => {
    const extra = join(dir, 'extra');
    await writeFile(join(dir, 'note.txt'), 'hello from basalt\n');
    await mkdir(join(extra, 'sub'), { recursive: true });
    await writeFile(join(extra, 'sub', 'data.bin'), randomBytes(100_000));
    await writeFile(join(dir, 'updates.img'), randomBytes(5000));
    const out = join(dir, 'out.iso');
    basaltOk(['iso', 'remaster', iso, out, '-a', join(dir, 'note.txt'), '-a', extra, '-u', join(dir, 'updates.img'), '--no-md5sum']);
    assert.notEqual(checkisomd5(out), 0, 'no checksum was implanted');
    assert.equal(xorrisoExtract(out, '/note.txt', join(dir, 'n')).toString(), 'hello from basalt\n');
    assert.deepEqual(xorrisoExtract(out, '/extra/sub/data.bin', join(dir, 'd')), await readFile(join(extra, 'sub', 'data.bin')));
    assert.deepEqual(xorrisoExtract(out, '/updates.img', join(dir, 'u')), await readFile(join(dir, 'updates.img')));
    const cfg = basaltOk(['iso', 'extract', out, '/boot/grub/grub.cfg', '-']);
    assert.match(cfg, new RegExp(`inst\\.updates=hd:LABEL=${GRUB_VOLID}:/updates\\.img`));
  });
});

async function assertNoOutput(dir: string): Promise<void> {
  const left = (await readdir(dir)).filter((f) => f.includes('out.iso'));
  assert.deepEqual(left, [], 'no output and no temp file is left behind');
}

test('bad input: clear errors, non-zero exit, no OUT.iso left behind', async () => {
  const iso = await grubMkrescueIso();
  await withTempDir('iso-bad', async (dir) => {
    const out = join(dir, 'out.iso');
    const cases: { name: string; args: string[]; status: number; message: RegExp }[] = [];
    const notIso = join(dir, 'random.bin');
    await writeFile(notIso, randomBytes(200_000));
    cases.push({ name: 'not an ISO', args: [notIso, out], status: 5, message: /is not an ISO 9660 image/ });
    const truncated = join(dir, 'truncated.iso');
    await copyFile(iso, truncated);
    await truncate(truncated, Math.floor((await stat(iso)).size / 2));
    cases.push({ name: 'truncated', args: [truncated, out], status: 5, message: /truncated/ });
    const plainDir = join(dir, 'plain');
    await mkdir(plainDir);
    await writeFile(join(plainDir, 'README'), 'no boot here\n');
    const plain = join(dir, 'plain.iso');
    run('xorriso', ['-as', 'mkisofs', '-R', '-J', '-V', 'PLAIN', '-o', plain, plainDir]);
    cases.push({ name: 'no boot configuration', args: [plain, out], status: 6, message: /no boot configuration/ });
    cases.push({ name: 'volume id too long', args: [iso, out, '-V', 'X'.repeat(33)], status: 2, message: /ISO 9660 allows 1 to 32/ });
    cases.push({ name: 'forbidden characters', args: [iso, out, '-V', 'BAD*ID'], status: 2, message: /characters ISO 9660 volume ids cannot carry/ });
    cases.push({ name: 'missing kickstart', args: [iso, out, '--ks', join(dir, 'nope.ks')], status: 3, message: /kickstart .*nope\.ks: no such file/ });
    for (const c of cases) {
      const r = basalt(['iso', 'remaster', ...c.args]);
      assert.equal(r.status, c.status, `${c.name}: exit ${r.status}, stderr ${r.stderr}`);
      assert.match(r.stderr, c.message, c.name);
      await assertNoOutput(dir);
    }
    // info on a non-ISO and on a truncated ISO also fail cleanly.
    assert.equal(basalt(['iso', 'info', notIso]).status, 5);
  });
});

test('a full EFI image is rebuilt larger and relocated: catalog, MBR and GPT follow it', async () => {
  for (const t of ['xorriso', 'mkfs.vfat', 'mcopy', 'mdir', 'mtype', 'fsck.vfat', 'checkisomd5']) requireTool(t);
  await withTempDir('iso-efi-full', async (dir) => {
    const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    const tree = join(dir, 'tree');
    for (const d of ['isolinux', 'images', 'EFI/BOOT']) await mkdir(join(tree, d), { recursive: true });
    await copyFile('/usr/lib/ISOLINUX/isolinux.bin', join(tree, 'isolinux/isolinux.bin'));
    await writeFile(join(tree, 'isolinux/isolinux.cfg'), 'default linux\nlabel linux\n  kernel /vmlinuz\n  append initrd=/initrd.img quiet\n');
    const grubCfg = "search -l 'FULL EFI'\nmenuentry x {\n  linuxefi /vmlinuz quiet\n}\n";
    await writeFile(join(tree, 'EFI/BOOT/grub.cfg'), grubCfg);
    await writeFile(join(tree, 'vmlinuz'), 'not a kernel');
    // A 1 MiB FAT image with its grub.cfg and a filler taking every free byte.
    const img = join(tree, 'images/efiboot.img');
    run('mkfs.vfat', ['-C', img, '1024']);
    run('mmd', ['-i', img, '::/EFI', '::/EFI/BOOT'], { env });
    run('mcopy', ['-i', img, join(tree, 'EFI/BOOT/grub.cfg'), '::/EFI/BOOT/grub.cfg'], { env });
    const free = Number(/([\d ]+) bytes free/.exec(run('mdir', ['-i', img, '::/'], { env }))?.[1]?.replace(/ /g, ''));
    await writeFile(join(dir, 'fill.bin'), randomBytes(free));
    run('mcopy', ['-i', img, join(dir, 'fill.bin'), '::/FILL.BIN'], { env });
    const iso = join(dir, 'full.iso');
    run('xorriso', ['-as', 'mkisofs', '-o', iso, '-isohybrid-mbr', '/usr/lib/ISOLINUX/isohdpfx.bin', '-b', 'isolinux/isolinux.bin', '-c', 'isolinux/boot.cat', '-no-emul-boot', '-boot-load-size', '4', '-boot-info-table', '-eltorito-alt-boot', '-e', 'images/efiboot.img', '-no-emul-boot', '-isohybrid-gpt-basdat', '-R', '-J', '-V', 'FULL EFI', tree]);
    type Info = { bootCatalog: { entries: { platform: string; lba: number; sectorCount: number }[] }; mbr: { type: number; startLba: number; sizeBlocks: number }[]; gpt: { partitions: { firstLba: number; lastLba: number }[] } };
    const before = JSON.parse(basaltOk(['iso', 'info', iso, '--format', 'json'])) as Info;
    const longArgs = Array.from({ length: 120 }, (_, i) => `basalt.arg${i}=${'x'.repeat(40)}`).join(' ');
    const out = join(dir, 'out.iso');
    const report = JSON.parse(basaltOk(['iso', 'remaster', iso, out, '-c', longArgs, '--format', 'json'])) as { efiImage: string };
    assert.equal(report.efiImage, 'relocated');
    assert.equal(checkisomd5(out), 0);
    const after = JSON.parse(basaltOk(['iso', 'info', out, '--format', 'json'])) as Info;
    const oldUefi = before.bootCatalog.entries.find((e) => e.platform === 'uefi');
    const newUefi = after.bootCatalog.entries.find((e) => e.platform === 'uefi');
    assert.ok(oldUefi && newUefi && newUefi.lba > oldUefi.lba, 'the catalog points at the new place');
    // The file in the tree, the catalog, the MBR 0xef entry and the GPT entry all name the same new image.
    const efiboot = join(dir, 'efiboot.img');
    const extracted = xorrisoExtract(out, '/images/efiboot.img', efiboot);
    assert.ok(extracted.length > 1024 * 1024);
    const efiMbr = after.mbr.find((p) => p.type === 0xef);
    assert.deepEqual([efiMbr?.startLba, efiMbr?.sizeBlocks], [newUefi.lba * 4, extracted.length / 512]);
    assert.ok(after.gpt.partitions.some((p) => p.firstLba === newUefi.lba * 4 && p.lastLba === newUefi.lba * 4 + extracted.length / 512 - 1));
    assert.equal(newUefi.sectorCount, extracted.length / 512);
    run('fsck.vfat', ['-n', efiboot]);
    assert.match(run('mtype', ['-i', efiboot, '::/EFI/BOOT/grub.cfg'], { env }), /basalt\.arg119=x{40}\n/);
    run('mcopy', ['-n', '-i', efiboot, '::/FILL.BIN', join(dir, 'fill.out')], { env });
    assert.deepEqual(await readFile(join(dir, 'fill.out')), await readFile(join(dir, 'fill.bin')), 'the other files came along');
  });
});

test('with SOURCE_DATE_EPOCH the same inputs give a byte-identical remaster', async () => {
  const iso = await loraxStyleIso();
  await withTempDir('iso-repro', async (dir) => {
    const outs = [join(dir, 'a.iso'), join(dir, 'b.iso')];
    for (const out of outs) {
      basaltOk(['iso', 'remaster', iso, out, '--ks', KICKSTART, '-c', 'basalt.test=1'], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
      await new Promise((r) => setTimeout(r, 1100)); // a clock leaking in would show
    }
    const [a, b] = await Promise.all(outs.map((o) => readFile(o)));
    assert.ok(a && b && a.equals(b), 'the two outputs are identical');
  });
});
