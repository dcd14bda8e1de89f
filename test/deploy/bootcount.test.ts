import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { countingSuffix, currentBootCounter, entryFileName, entryState, espEntryStates, parseEntryFileName } from '../../src/deploy/bootcount.js';
import { ENTRIES_DIR, ENTRY_PREFIX, entryId, entryIdOfFile, espFiles, mirrorBootEntries } from '../../src/deploy/bootentries.js';
import { directoryEsp } from '../../src/deploy/esp-target.js';
import { afterFailure } from '../../src/deploy/health.js';
import { readHostStatus } from '../../src/deploy/status.js';
import { listDeployments } from '../../src/deploy/sysroot.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { run, tempDir } from '../harness/tools.js';
import { ostreeSysroot } from './ostree-sysroot.js';

test('entry names with systemd-boot counters parse to stem, tries left and done', () => {
  assert.deepEqual(parseEntryFileName('basalt-default-0123456789ab.0.conf'), { stem: 'basalt-default-0123456789ab.0' });
  assert.deepEqual(parseEntryFileName('basalt-default-0123456789ab.0+3.conf'), { stem: 'basalt-default-0123456789ab.0', counter: { triesLeft: 3, triesDone: 0 } });
  assert.deepEqual(parseEntryFileName('basalt-x.1+2-1.conf'), { stem: 'basalt-x.1', counter: { triesLeft: 2, triesDone: 1 } });
  assert.deepEqual(parseEntryFileName('basalt-x.1+0-3.conf'), { stem: 'basalt-x.1', counter: { triesLeft: 0, triesDone: 3 } });
  assert.equal(parseEntryFileName('basalt-x.1+3.conf.tmp'), undefined);
  assert.equal(parseEntryFileName('loader.conf')?.stem, 'loader');
  assert.equal(entryIdOfFile('basalt-default-0123456789ab.0+0-3.conf'), 'default-0123456789ab.0');
  assert.equal(entryIdOfFile('basalt-default-0123456789ab.0.conf'), 'default-0123456789ab.0');
  assert.equal(entryIdOfFile('ostree-1-default.conf'), undefined);
  assert.equal(entryState(undefined), 'good');
  assert.equal(entryState({ triesLeft: 1, triesDone: 2 }), 'trying');
  assert.equal(entryState({ triesLeft: 0, triesDone: 3 }), 'bad');
});

test('new entry names carry +TRIES; 0 or none turns counting off; nonsense is refused', () => {
  assert.equal(entryFileName('basalt-a', 3), 'basalt-a+3.conf');
  assert.equal(entryFileName('basalt-a', 0), 'basalt-a.conf');
  assert.equal(entryFileName('basalt-a', undefined), 'basalt-a.conf');
  for (const bad of [-1, 1.5, Number.NaN, 5000]) assert.throws(() => countingSuffix(bad), (e) => isBasaltError(e, 'usage'));
});

test('the booted entry\'s counter is read from LoaderBootCountPath (EFI variable: attributes, then UTF-16LE)', async () => {
  const dir = await tempDir('efivar');
  const variable = join(dir, 'LoaderBootCountPath');
  assert.equal(await currentBootCounter(variable), undefined, 'no variable: this boot is not counted');
  const text = Buffer.from('\\loader\\entries\\basalt-default-0123456789ab.0+1-2.conf\0', 'utf16le');
  await writeFile(variable, Buffer.concat([Buffer.from([7, 0, 0, 0]), text]));
  assert.deepEqual(await currentBootCounter(variable), { triesLeft: 1, triesDone: 2 });
});

test('after a failed health check: reboot while tries are left or another entry can boot, else stay up', () => {
  assert.equal(afterFailure({ triesLeft: 1, triesDone: 1 }, false), 'reboot');
  assert.equal(afterFailure({ triesLeft: 0, triesDone: 3 }, true), 'reboot', 'systemd-boot picks the other entry: rollback');
  assert.equal(afterFailure({ triesLeft: 0, triesDone: 3 }, false), 'stay', 'a reboot would loop on the only entry');
  assert.equal(afterFailure(undefined, true), 'stay', 'an uncounted boot would come back to the same entry');
});

test('mirror with boot counting: new entries +3, the bootloader\'s renames kept, a bad entry reported by status', async () => {
  const sysroot = await ostreeSysroot(1);
  const esp = await tempDir('esp-count');
  const entries = join(esp, ENTRIES_DIR);
  await mirrorBootEntries(sysroot, directoryEsp(esp), { bootCountingTries: 3 });
  const [first] = await listDeployments(sysroot);
  const firstStem = `${ENTRY_PREFIX}${entryId(first!)}`;
  assert.deepEqual(await readdir(entries), [`${firstStem}+3.conf`]);
  assert.ok((await espFiles(sysroot, { bootCountingTries: 3 })).some((f) => f.path === `${ENTRIES_DIR}/${firstStem}+3.conf`), 'a fresh ESP image gets the same name');

  // systemd-boot tried it three times and it never reached boot-complete.target: out of tries.
  await rename(join(entries, `${firstStem}+3.conf`), join(entries, `${firstStem}+0-3.conf`));
  run('ostree', ['admin', 'deploy', `--sysroot=${sysroot}`, '--os=default', 'test']);
  await mirrorBootEntries(sysroot, directoryEsp(esp), { bootCountingTries: 3 });
  const second = (await listDeployments(sysroot)).find((d) => d.deploySerial !== first!.deploySerial)!;
  const secondStem = `${ENTRY_PREFIX}${entryId(second)}`;
  assert.deepEqual((await readdir(entries)).sort(), [`${firstStem}+0-3.conf`, `${secondStem}+3.conf`].sort(), 'the counter of the old entry is not reset');

  const states = await espEntryStates(directoryEsp(esp), ENTRIES_DIR, ENTRY_PREFIX);
  assert.equal(states.get(firstStem)?.state, 'bad');
  assert.equal(states.get(secondStem)?.state, 'trying');
  const host = await readHostStatus({ sysroot, espDir: esp });
  assert.equal(host.status.default?.bootEntry?.state, 'trying');
  assert.deepEqual(host.status.rollback?.bootEntry, { file: `${firstStem}+0-3.conf`, state: 'bad', counter: { triesLeft: 0, triesDone: 3 } });
  assert.equal((await readHostStatus({ sysroot })).status.default?.bootEntry, null, 'without an ESP nothing is claimed');

  // systemd-bless-boot blessed the new one: the mirror does not put a counter back.
  await rename(join(entries, `${secondStem}+3.conf`), join(entries, `${secondStem}.conf`));
  const again = await mirrorBootEntries(sysroot, directoryEsp(esp), { bootCountingTries: 3 });
  assert.ok(!again.written.some((p) => p.startsWith(ENTRIES_DIR)), `nothing rewritten: ${again.written.join(' ')}`);
  assert.deepEqual((await readdir(entries)).sort(), [`${firstStem}+0-3.conf`, `${secondStem}.conf`].sort());
  assert.equal((await readHostStatus({ sysroot, espDir: esp })).status.default?.bootEntry?.state, 'good');
});

test('a mirror racing systemd-bless-boot keeps one entry per deployment; a leftover duplicate is repaired', async () => {
  const sysroot = await ostreeSysroot(1);
  const esp = await tempDir('esp-race');
  const entries = join(esp, ENTRIES_DIR);
  await mirrorBootEntries(sysroot, directoryEsp(esp), { bootCountingTries: 3 });
  const [first] = await listDeployments(sysroot);
  const stem = `${ENTRY_PREFIX}${entryId(first!)}`;
  await rename(join(entries, `${stem}+3.conf`), join(entries, `${stem}+2-1.conf`)); // systemd-boot booted it
  run('ostree', ['admin', 'deploy', `--sysroot=${sysroot}`, '--os=default', 'test']); // its version (order) changes
  const second = (await listDeployments(sysroot)).find((d) => d.deploySerial !== first!.deploySerial)!;
  const secondStem = `${ENTRY_PREFIX}${entryId(second)}`;

  // systemd-bless-boot renames the entry right after the mirror listed the directory.
  const plain = directoryEsp(esp);
  let blessed = false;
  const racing = {
    ...plain,
    list: async (dir: string): Promise<string[]> => {
      const listed = await plain.list(dir);
      if (dir === ENTRIES_DIR && !blessed) {
        blessed = true;
        await rename(join(entries, `${stem}+2-1.conf`), join(entries, `${stem}.conf`));
      }
      return listed;
    },
  };
  await mirrorBootEntries(sysroot, racing, { bootCountingTries: 3 });
  assert.deepEqual((await readdir(entries)).sort(), [`${stem}.conf`, `${secondStem}+3.conf`].sort(), 'the old name is not written back beside the blessed one');
  const again = await mirrorBootEntries(sysroot, directoryEsp(esp), { bootCountingTries: 3 });
  assert.ok(again.written.includes(`${ENTRIES_DIR}/${stem}.conf`), 'the next mirror brings the renamed entry up to date');

  // A disk where an older basalt lost that race: both names. The one further along stays.
  await writeFile(join(entries, `${stem}+1-2.conf`), 'title stale\n');
  const repaired = await mirrorBootEntries(sysroot, directoryEsp(esp), { bootCountingTries: 3 });
  assert.deepEqual(repaired.removed, [`${ENTRIES_DIR}/${stem}+1-2.conf`]);
  assert.deepEqual((await readdir(entries)).sort(), [`${stem}.conf`, `${secondStem}+3.conf`].sort());
});
