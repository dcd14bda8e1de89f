import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chown, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { basalt, basaltOk } from '../harness/cli.js';
import { run, tempDir } from '../harness/tools.js';
import { readAci } from '../../src/appc/archive.js';
import { parseImageManifest } from '../../src/appc/manifest.js';
import { actool, helloLayout, manifestOf, runActool } from './helpers.js';

let dir: string;
let actoolBin: string;
let layout: string;
before(async () => {
  dir = await tempDir('aci-build');
  actoolBin = await actool();
  layout = await helloLayout(join(dir, 'layout'), manifestOf('example.com/hello'));
  await mkdir(join(layout, 'rootfs', 'etc'), { recursive: true });
  await writeFile(join(layout, 'rootfs', 'etc', 'owned'), 'owned by 1234\n');
  await chown(join(layout, 'rootfs', 'etc', 'owned'), 1234, 1234);
});
after(async () => rm(dir, { recursive: true, force: true }));

test('aci build: same layout and SOURCE_DATE_EPOCH give the same bytes, another epoch other bytes; actool accepts it', async () => {
  const env = { SOURCE_DATE_EPOCH: '1700000000' };
  const a = join(dir, 'a.aci');
  const b = join(dir, 'b.aci');
  basaltOk(['aci', 'build', layout, a], { env });
  basaltOk(['aci', 'build', layout, b], { env });
  assert.ok((await readFile(a)).equals(await readFile(b)), 'two builds differ');
  const c = join(dir, 'c.aci');
  basaltOk(['aci', 'build', layout, c], { env: { SOURCE_DATE_EPOCH: '1600000000' } });
  assert.ok(!(await readFile(a)).equals(await readFile(c)), 'the epoch did not reach the archive');
  const peer = runActool(actoolBin, ['validate', a]);
  assert.equal(peer.status, 0, peer.out);
  // The image ID is the SHA-512 of the uncompressed tar.
  const info = await readAci(a);
  assert.equal(info.imageId, `sha512-${createHash('sha512').update(gunzipSync(await readFile(a))).digest('hex')}`);
  const listing = run('tar', ['-tzvf', a]).trim().split('\n');
  assert.match(listing[0] as string, /manifest$/);
  assert.match(listing[1] as string, /rootfs\/$/);
  assert.ok(listing.every((l) => l.includes('2023-11-14')), listing.join('\n'));
});

test('aci build: --no-compression writes a tar, --owner-root records 0:0, OUT is not replaced without --overwrite', async () => {
  const plain = join(dir, 'plain.aci');
  basaltOk(['aci', 'build', '--no-compression', layout, plain]);
  assert.equal((await readFile(plain)).subarray(257, 262).toString(), 'ustar');
  assert.match(run('tar', ['-tvf', plain]), /1234\/1234 .*rootfs\/etc\/owned/);
  const rooted = join(dir, 'rooted.aci');
  basaltOk(['aci', 'build', '--owner-root', layout, rooted]);
  assert.match(run('tar', ['-tzvf', rooted]), /0\/0 .*rootfs\/etc\/owned/);
  const before = await readFile(rooted);
  const again = basalt(['aci', 'build', layout, rooted]);
  assert.equal(again.status, 2);
  assert.match(again.stderr, /already exists/);
  assert.ok((await readFile(rooted)).equals(before));
  basaltOk(['aci', 'build', '--overwrite', '--no-compression', layout, rooted]);
  assert.equal((await readFile(rooted)).subarray(257, 262).toString(), 'ustar');
});

test('aci build refuses a layout that breaks the spec and writes nothing', async () => {
  const bad = join(dir, 'bad-layout');
  await mkdir(join(bad, 'rootfs'), { recursive: true });
  await writeFile(join(bad, 'manifest'), JSON.stringify(manifestOf('example.com/x', { labels: [{ name: 'os', value: 'plan9' }] })));
  const out = join(dir, 'bad.aci');
  const r = basalt(['aci', 'build', bad, out]);
  assert.equal(r.status, 5);
  assert.match(r.stderr, /bad os "plan9"/);
  await assert.rejects(stat(out));
  await writeFile(join(bad, 'manifest'), JSON.stringify(manifestOf('example.com/x')));
  await writeFile(join(bad, 'README'), 'not allowed at the top');
  const r2 = basalt(['aci', 'build', bad, out]);
  assert.equal(r2.status, 5);
  assert.match(r2.stderr, /unrecognized file path in layout: "README"/);
  await assert.rejects(stat(out));
});

test('an ACI built by actool is valid for basalt, and cat-manifest prints its manifest', async () => {
  const out = join(dir, 'by-actool.aci');
  const r = runActool(actoolBin, ['build', layout, out]);
  assert.equal(r.status, 0, r.out);
  basaltOk(['aci', 'validate', out]);
  const printed = JSON.parse(basaltOk(['aci', 'cat-manifest', out])) as unknown;
  assert.deepEqual(printed, JSON.parse(runActool(actoolBin, ['cat-manifest', out]).out));
  assert.match(basaltOk(['aci', 'cat-manifest', '--pretty-print', out]), /\n {4}"acKind": "ImageManifest"/);
});

/** The manifest of an ACI, normalised by basalt's parser so both tools' serialisations compare. */
async function manifestIn(file: string): Promise<unknown> {
  return (await readAci(file, { mode: 'strict' })).manifest;
}

test('patch-manifest: basalt and actool make the same manifest from the same flags, and both accept the result', async () => {
  const input = join(dir, 'patch-in.aci');
  basaltOk(['aci', 'build', layout, input]);
  const flagSets: string[][] = [
    ['--name=example.com/renamed', '--exec=/bin/hello --loud', '--user=1000', '--group=1000'],
    ['--capability=CAP_NET_ADMIN,CAP_SYS_ADMIN', '--mounts=data,path=/data,readOnly=true:cache,path=/cache', '--ports=http,protocol=tcp,port=8080:dns,protocol=udp,port=53,count=2'],
    ['--supplementary-groups=10,20', '--isolators=resource/cpu,request=50m,limit=100m:os/linux/no-new-privileges,true:os/linux/oom-score-adj,100'],
    ['--revoke-capability=CAP_MKNOD', '--seccomp-mode=retain,errno=ENOSYS', '--seccomp-set=read,write,exit'],
  ];
  for (const [i, flags] of flagSets.entries()) {
    const ours = join(dir, `patched-${i}-basalt.aci`);
    const theirs = join(dir, `patched-${i}-actool.aci`);
    basaltOk(['aci', 'patch-manifest', ...flags, input, ours]);
    const r = runActool(actoolBin, ['patch-manifest', ...flags, input, theirs]);
    assert.equal(r.status, 0, r.out);
    assert.deepEqual(await manifestIn(ours), await manifestIn(theirs), flags.join(' '));
    assert.equal(runActool(actoolBin, ['validate', ours]).status, 0);
  }
  // Edits both tools refuse.
  for (const flags of [['--capability=CAP_A', '--revoke-capability=CAP_B'], ['--isolators=os/linux/seccomp-retain-set,set=read'], ['--mounts=Bad_Name,path=/x'], ['--seccomp-set=read'], ['--ports=p,protocol=tcp,port=0']]) {
    const out = join(dir, `refused-${flags.length}-${Math.random().toString(36).slice(2)}.aci`);
    const ours = basalt(['aci', 'patch-manifest', ...flags, input, out]);
    const theirs = runActool(actoolBin, ['patch-manifest', ...flags, input, `${out}.actool.aci`]);
    assert.notEqual(theirs.status, 0, `actool accepted ${flags.join(' ')}`);
    assert.equal(ours.status, 2, `${flags.join(' ')}: ${ours.stderr}`);
    await assert.rejects(stat(out));
  }
});

test('patch-manifest --manifest replaces the manifest, --replace patches in place; the rootfs is kept', async () => {
  const input = join(dir, 'replace.aci');
  basaltOk(['aci', 'build', layout, input]);
  const newManifest = join(dir, 'new-manifest.json');
  await writeFile(newManifest, JSON.stringify(manifestOf('example.com/other', { app: { exec: ['/bin/hello'], user: '5', group: '6' } })));
  const out = join(dir, 'replaced.aci');
  basaltOk(['aci', 'patch-manifest', '--manifest', newManifest, input, out]);
  const m = parseImageManifest(basaltOk(['aci', 'cat-manifest', out]), out);
  assert.equal(m.name, 'example.com/other');
  assert.equal(m.app?.user, '5');
  assert.match(run('tar', ['-tzf', out]), /rootfs\/bin\/hello/);
  const conflicting = basalt(['aci', 'patch-manifest', '--manifest', newManifest, '--name', 'example.com/x', input, join(dir, 'x.aci')]);
  assert.equal(conflicting.status, 2);
  basaltOk(['aci', 'patch-manifest', '--replace', '--user', '42', input]);
  assert.equal(parseImageManifest(basaltOk(['aci', 'cat-manifest', input]), input).app?.user, '42');
  assert.equal(runActool(actoolBin, ['validate', input]).status, 0);
  const badName = basalt(['aci', 'patch-manifest', '--name', 'Not Valid', input, join(dir, 'y.aci')]);
  assert.equal(badName.status, 2);
  assert.match(badName.stderr, /AC Identifier/);
});

test('aci export is reproducible: the same ACI and SOURCE_DATE_EPOCH give the same OCI manifest digest', async () => {
  const input = join(dir, 'export-in.aci');
  basaltOk(['aci', 'build', layout, input], { env: { SOURCE_DATE_EPOCH: '1700000000' } });
  const env = { SOURCE_DATE_EPOCH: '1700000000' };
  const a = basaltOk(['aci', 'export', input, `oci:${join(dir, 'oci-a')}:x`], { env }).trim();
  const b = basaltOk(['aci', 'export', input, `oci:${join(dir, 'oci-b')}:x`], { env }).trim();
  assert.match(a, /^sha256:[0-9a-f]{64}$/);
  assert.equal(a, b);
  const index = JSON.parse(await readFile(join(dir, 'oci-a', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  assert.equal(index.manifests[0]?.digest, a);
  const missing = basalt(['aci', 'export', '--store', join(dir, 'empty-store'), 'example.com/nothing', `oci:${join(dir, 'oci-c')}:x`]);
  assert.equal(missing.status, 3);
});
