import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { planGpt, writeGpt, gptBytes } from '../../src/media/gpt.js';
import { readGpt } from '../../src/media/gpt-reader.js';
import { crc32 } from '../../src/media/crc32.js';
import { deterministicGuid, guidFromBytes, guidToBytes } from '../../src/media/guid.js';
import { PartitionType } from '../../src/media/partition-types.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { requireTool, run, withTempDir } from '../harness/tools.js';

const MiB = 1024 * 1024;

test('crc32 matches the IEEE check value', () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
});

test('GUIDs round-trip through GPT\'s mixed-endian form; seeded ones are stable and distinct', () => {
  const bytes = guidToBytes(PartitionType.esp);
  assert.equal(bytes.toString('hex'), '28732ac11ff8d211ba4b00a0c93ec93b');
  assert.equal(guidFromBytes(bytes), PartitionType.esp);
  assert.equal(deterministicGuid('s', 'disk'), deterministicGuid('s', 'disk'));
  assert.notEqual(deterministicGuid('s', 'disk'), deterministicGuid('t', 'disk'));
  assert.match(deterministicGuid('s', 'disk'), /^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/);
});

const spec = [
  { name: 'EFI-SYSTEM', typeGuid: PartitionType.esp, size: 33 * MiB + 5 },
  { name: 'root', typeGuid: PartitionType.rootX86_64, size: 'rest' as const, attributes: 1n << 59n },
];

test('GPT written in TypeScript reads back, and sfdisk and sgdisk agree with it', async () => {
  requireTool('sfdisk');
  requireTool('sgdisk');
  await withTempDir('gpt', async (dir) => {
    const path = join(dir, 'disk.img');
    const layout = planGpt({ diskSize: 200 * MiB, partitions: spec, seed: 'gpt-test' });
    const fh = await open(path, 'w');
    await fh.truncate(layout.diskSize);
    await writeGpt(fh, layout);
    await fh.close();

    const table = await readGpt(path);
    assert.equal(table.source, 'primary');
    assert.equal(table.diskGuid, layout.diskGuid);
    assert.deepEqual(table.partitions.map((p) => [p.name, p.typeGuid, p.uniqueGuid, p.offset, p.size, p.attributes]), layout.partitions.map((p) => [p.name, p.typeGuid, p.uniqueGuid, p.offset, p.size, p.attributes]));
    assert.equal(layout.partitions[0]?.offset, MiB);
    assert.equal(layout.partitions[0]?.size, 34 * MiB, 'sizes round up to 1 MiB');
    for (const p of layout.partitions) assert.equal(p.offset % MiB, 0);

    const sf = JSON.parse(run('sfdisk', ['-J', path])) as { partitiontable: { label: string; id: string; partitions: Array<{ start: number; size: number; type: string; uuid: string; name: string }> } };
    assert.equal(sf.partitiontable.label, 'gpt');
    assert.equal(sf.partitiontable.id, layout.diskGuid);
    assert.deepEqual(sf.partitiontable.partitions.map((p) => [p.start, p.size, p.type, p.uuid, p.name]), layout.partitions.map((p) => [p.firstLba, p.lastLba - p.firstLba + 1, p.typeGuid, p.uniqueGuid, p.name]));
    const verify = run('sgdisk', ['-v', path]);
    assert.match(verify, /No problems found/);
  });
});

test('GPT reader falls back to the backup header when the primary is damaged', async () => {
  await withTempDir('gpt-backup', async (dir) => {
    const path = join(dir, 'disk.img');
    const layout = planGpt({ diskSize: 64 * MiB, partitions: spec, seed: 'x' });
    const { head, tail, tailOffset } = gptBytes(layout);
    head.fill(0x5a, 512 + 24, 512 + 32); // corrupt the primary header
    const fh = await open(path, 'w');
    await fh.truncate(layout.diskSize);
    await fh.write(head, 0, head.length, 0);
    await fh.write(tail, 0, tail.length, tailOffset);
    await fh.close();
    const table = await readGpt(path);
    assert.equal(table.source, 'backup');
    assert.equal(table.partitions.length, 2);
    await writeFile(path, Buffer.alloc(4 * MiB));
    await assert.rejects(readGpt(path), (e) => isBasaltError(e, 'invalid') && e.message.includes(path));
  });
});

test('GPT planning refuses partitions that do not fit, bad GUIDs and two "rest" partitions', () => {
  assert.throws(() => planGpt({ diskSize: 32 * MiB, partitions: [{ name: 'a', typeGuid: PartitionType.esp, size: 40 * MiB }], seed: 's' }), (e) => isBasaltError(e, 'usage') && /need/.test(e.message));
  assert.throws(() => planGpt({ diskSize: 32 * MiB, partitions: [{ name: 'a', typeGuid: 'nope', size: MiB }], seed: 's' }), (e) => isBasaltError(e, 'invalid') && e.message.includes('"a"'));
  assert.throws(() => planGpt({ diskSize: 32 * MiB, partitions: [{ name: 'a', typeGuid: PartitionType.esp, size: 'rest' }, { name: 'b', typeGuid: PartitionType.esp, size: 'rest' }], seed: 's' }), (e) => isBasaltError(e, 'usage'));
});
