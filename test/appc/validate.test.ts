import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basalt } from '../harness/cli.js';
import { tempDir } from '../harness/tools.js';
import { parseImageManifest } from '../../src/appc/manifest.js';
import { EXIT_CODES, isBasaltError } from '../../src/oci/errors.js';
import { readAci } from '../../src/appc/archive.js';
import { actool, manifestOf, runActool, writeAciFile, type RawEntry } from './helpers.js';

let dir: string;
let actoolBin: string;
before(async () => {
  dir = await tempDir('aci-validate');
  actoolBin = await actool();
});
after(async () => rm(dir, { recursive: true, force: true }));

const base = (): Record<string, unknown> => manifestOf('example.com/app');
const app = (patch: Record<string, unknown>): Record<string, unknown> => ({ ...base(), app: { exec: ['/bin/hello'], user: '0', group: '0', ...patch } });
const iso = (...isolators: unknown[]): Record<string, unknown> => app({ isolators });

/** [case, manifest (object or raw text), valid in strict mode, valid for actool]. */
const MANIFESTS: [string, unknown, boolean, boolean][] = [
  ['minimal valid', { acKind: 'ImageManifest', acVersion: '0.8.11', name: 'example.com/app' }, true, true],
  ['full valid', {
    ...base(),
    app: {
      exec: ['/bin/hello', '--flag'], user: 'nobody', group: 'nogroup', supplementaryGIDs: [1, 2], workingDirectory: '/srv',
      eventHandlers: [{ name: 'pre-start', exec: ['/bin/true'] }, { name: 'post-stop', exec: ['/bin/true'] }],
      environment: [{ name: 'PATH', value: '/bin' }, { name: 'MY_VAR_1', value: 'x' }],
      mountPoints: [{ name: 'data', path: '/var/data', readOnly: true }],
      ports: [{ name: 'http', protocol: 'tcp', port: 8080, count: 2, socketActivated: false }],
      isolators: [
        { name: 'resource/cpu', value: { request: '250m', limit: '500m' } },
        { name: 'resource/memory', value: { limit: '1Gi' } },
        { name: 'resource/network-bandwidth', value: { default: true, limit: '1G' } },
        { name: 'os/linux/capabilities-retain-set', value: { set: ['CAP_NET_BIND_SERVICE'] } },
        { name: 'os/linux/no-new-privileges', value: true },
        { name: 'os/linux/seccomp-retain-set', value: { set: ['@appc.io/all'], errno: 'EPERM' } },
        { name: 'os/linux/oom-score-adj', value: -500 },
        { name: 'os/linux/cpu-shares', value: 512 },
        { name: 'os/linux/selinux-context', value: { user: 'system_u', role: 'system_r', type: 'svirt_lxc_net_t', level: 's0:c1,c2' } },
        { name: 'os/unix/sysctl', value: { 'net.ipv4.ip_forward': '1' } },
      ],
      userAnnotations: { note: 'x' }, userLabels: { team: 'y' },
    },
    annotations: [{ name: 'created', value: '2024-01-02T03:04:05Z' }, { name: 'homepage', value: 'https://example.com' }, { name: 'documentation', value: 'http://example.com/doc' }],
    dependencies: [{ imageName: 'example.com/base', imageID: `sha512-${'a'.repeat(128)}`, labels: [{ name: 'version', value: '1' }], size: 1000 }],
    pathWhitelist: ['/bin/hello', '/etc'],
  }, true, true],
  ['not JSON', '{"acKind": "ImageManifest",', false, false],
  ['JSON array', '[]', false, false],
  ['acKind missing', { acVersion: '0.8.11', name: 'example.com/app' }, false, false],
  ['acKind wrong', { ...base(), acKind: 'Image' }, false, false],
  ['acVersion missing', { acKind: 'ImageManifest', name: 'example.com/app' }, false, false],
  ['acVersion not semver', { ...base(), acVersion: '0.8' }, false, false],
  ['acVersion zero', { ...base(), acVersion: '0.0.0' }, false, false],
  ['name missing', { acKind: 'ImageManifest', acVersion: '0.8.11' }, false, false],
  ['name upper case', { ...base(), name: 'Example.com/App' }, false, false],
  ['name edge', { ...base(), name: '-example.com/app' }, false, false],
  ['name space', { ...base(), name: 'example com' }, false, false],
  ['name doubled separator (spec grammar, actool only checks characters)', { ...base(), name: 'example..com/app' }, false, true],
  ['label "name"', { ...base(), labels: [{ name: 'name', value: 'x' }] }, false, false],
  ['duplicate label', { ...base(), labels: [{ name: 'version', value: '1' }, { name: 'version', value: '2' }] }, false, false],
  ['bad os', { ...base(), labels: [{ name: 'os', value: 'plan9' }] }, false, false],
  ['bad arch for os', { ...base(), labels: [{ name: 'os', value: 'linux' }, { name: 'arch', value: 'x86_64' }] }, false, false],
  ['label name not an AC Identifier', { ...base(), labels: [{ name: 'Version', value: '1' }] }, false, false],
  ['app.user missing', app({ user: undefined }), false, false],
  ['app.group empty', app({ group: '' }), false, false],
  ['relative workingDirectory', app({ workingDirectory: 'srv' }), false, false],
  ['relative exec (spec: absolute path)', app({ exec: ['bin/hello'] }), false, true],
  ['exec not a list', app({ exec: '/bin/hello' }), false, false],
  ['exec missing (spec: required)', app({ exec: undefined }), false, true],
  ['exec empty (spec: non-empty)', app({ exec: [] }), false, true],
  ['environment name with a dot (spec: letters, digits, underscores)', app({ environment: [{ name: 'my.var', value: '' }] }), false, true],
  ['port count 0 (taken as unset, as actool does: actool itself writes it)', app({ ports: [{ name: 'p', protocol: 'tcp', port: 80, count: 0 }] }), true, true],
  ['bad environment name', app({ environment: [{ name: '1X', value: '' }] }), false, false],
  ['duplicate environment name', app({ environment: [{ name: 'A', value: '1' }, { name: 'A', value: '2' }] }), false, false],
  ['bad event handler', app({ eventHandlers: [{ name: 'on-crash', exec: ['/x'] }] }), false, false],
  ['duplicate event handler', app({ eventHandlers: [{ name: 'pre-start', exec: ['/x'] }, { name: 'pre-start', exec: ['/y'] }] }), false, false],
  ['port 0', app({ ports: [{ name: 'p', protocol: 'tcp', port: 0 }] }), false, false],
  ['port too big', app({ ports: [{ name: 'p', protocol: 'tcp', port: 70000 }] }), false, false],
  ['port range overflows', app({ ports: [{ name: 'p', protocol: 'tcp', port: 65535, count: 2 }] }), false, false],
  ['port name not an AC Name', app({ ports: [{ name: 'HTTP', protocol: 'tcp', port: 80 }] }), false, false],
  ['port as string', app({ ports: [{ name: 'p', protocol: 'tcp', port: '80' }] }), false, false],
  ['port without protocol (spec requires it)', app({ ports: [{ name: 'p', port: 80 }] }), false, true],
  ['mount point name not an AC Name', app({ mountPoints: [{ name: 'data_1', path: '/d' }] }), false, false],
  ['mount point without name (spec requires it)', app({ mountPoints: [{ path: '/d' }] }), false, true],
  ['unknown isolator', iso({ name: 'resource/gpu', value: {} }), false, false],
  ['cpu-shares out of range', iso({ name: 'os/linux/cpu-shares', value: 1 }), false, false],
  ['oom-score-adj out of range', iso({ name: 'os/linux/oom-score-adj', value: 2000 }), false, false],
  ['two oom-score-adj', iso({ name: 'os/linux/oom-score-adj', value: 1 }, { name: 'os/linux/oom-score-adj', value: 2 }), false, false],
  ['seccomp retain and remove', iso({ name: 'os/linux/seccomp-retain-set', value: { set: ['read'] } }, { name: 'os/linux/seccomp-remove-set', value: { set: ['write'] } }), false, false],
  ['seccomp bad errno', iso({ name: 'os/linux/seccomp-remove-set', value: { set: ['read'], errno: 'eperm' } }), false, false],
  ['empty capability set', iso({ name: 'os/linux/capabilities-remove-set', value: { set: [] } }), false, false],
  ['memory with default true', iso({ name: 'resource/memory', value: { default: true, limit: '1G' } }), false, false],
  ['block-bandwidth without default', iso({ name: 'resource/block-bandwidth', value: { limit: '1M' } }), false, false],
  ['network-bandwidth with request', iso({ name: 'resource/network-bandwidth', value: { default: true, request: '1M' } }), false, false],
  ['cpu limit not a quantity', iso({ name: 'resource/cpu', value: { limit: 'lots' } }), false, false],
  ['selinux without level', iso({ name: 'os/linux/selinux-context', value: { user: 'u', role: 'r', type: 't' } }), false, false],
  ['no-new-privileges not a bool', iso({ name: 'os/linux/no-new-privileges', value: 'yes' }), false, false],
  ['duplicate annotation', { ...base(), annotations: [{ name: 'a', value: '1' }, { name: 'a', value: '2' }] }, false, false],
  ['created not RFC 3339', { ...base(), annotations: [{ name: 'created', value: '2024-01-02 03:04' }] }, false, false],
  ['homepage not http(s)', { ...base(), annotations: [{ name: 'homepage', value: 'ftp://example.com' }] }, false, false],
  ['dependency without imageName', { ...base(), dependencies: [{ labels: [] }] }, false, false],
  ['dependency imageID not sha512', { ...base(), dependencies: [{ imageName: 'example.com/b', imageID: 'sha256-abc' }] }, false, false],
  ['dependency imageID without hash', { ...base(), dependencies: [{ imageName: 'example.com/b', imageID: 'sha512' }] }, false, false],
  ['dependency with duplicate labels', { ...base(), dependencies: [{ imageName: 'example.com/b', labels: [{ name: 'os', value: 'linux' }, { name: 'os', value: 'linux' }] }] }, false, false],
  ['relative pathWhitelist entry (spec: absolute)', { ...base(), pathWhitelist: ['etc'] }, false, true],
  ['keys in other case (Go matches them, the spec does not)', { ACKIND: 'ImageManifest', acversion: '0.8.11', Name: 'example.com/app' }, false, true],
];

/** A library call's result in the shape of a CLI run (exit code 5 and the message on failure). */
function outcome(fn: () => unknown): { status: number; stderr: string } {
  try {
    fn();
    return { status: 0, stderr: '' };
  } catch (e) {
    if (!isBasaltError(e)) throw e;
    return { status: EXIT_CODES[e.kind], stderr: `basalt: error: ${e.message}` };
  }
}

async function outcomeAsync(fn: () => Promise<unknown>): Promise<{ status: number; stderr: string }> {
  try {
    await fn();
    return { status: 0, stderr: '' };
  } catch (e) {
    if (!isBasaltError(e)) return { status: 1, stderr: String(e) };
    return { status: EXIT_CODES[e.kind], stderr: `basalt: error: ${e.message}` };
  }
}

test('image manifests: basalt strict mode follows the spec, actool mode agrees with actool on every case', async () => {
  const disagreements: string[] = [];
  for (const [i, [label, manifest, strictValid, actoolValid]] of MANIFESTS.entries()) {
    const file = join(dir, `manifest-${i}.json`);
    const text = typeof manifest === 'string' ? manifest : JSON.stringify(manifest);
    await writeFile(file, text);
    const peer = runActool(actoolBin, ['validate', '--type=manifest', file]);
    const compat = outcome(() => parseImageManifest(text, file, 'actool'));
    const strict = i < 3 || i === 10 ? basalt(['aci', 'validate', '--type', 'manifest', file]) : outcome(() => parseImageManifest(text, file, 'strict'));
    if ((peer.status === 0) !== actoolValid) disagreements.push(`${label}: actool ${peer.status === 0 ? 'accepts' : 'refuses'} it, the table says otherwise (${peer.out.trim()})`);
    if ((compat.status === 0) !== (peer.status === 0)) disagreements.push(`${label}: basalt --mode actool exits ${compat.status}, actool ${peer.status} (${compat.stderr.trim()} | ${peer.out.trim()})`);
    if ((strict.status === 0) !== strictValid) disagreements.push(`${label}: basalt strict exits ${strict.status} (${strict.stderr.trim()})`);
    if (!strictValid) {
      assert.equal(strict.status, 5, `${label}: an invalid manifest exits 5`);
      assert.match(strict.stderr, /invalid image manifest|not JSON/, label);
    }
  }
  assert.deepEqual(disagreements, []);
});

test('manifest errors name the rule that was broken', () => {
  const cases: [unknown, RegExp][] = [
    [{ ...base(), labels: [{ name: 'os', value: 'plan9' }] }, /bad os "plan9"/],
    [app({ ports: [{ name: 'p', protocol: 'tcp', port: 65535, count: 2 }] }), /end of the port range/],
    [iso({ name: 'os/linux/seccomp-retain-set', value: { set: ['read'] } }, { name: 'os/linux/seccomp-remove-set', value: { set: ['write'] } }), /cannot be combined/],
    [{ ...base(), name: 'example..com/app' }, /single "-._~\/" characters/],
    [{ ...base(), dependencies: [{ imageName: 'example.com/b', imageID: 'sha256-abc' }] }, /hash type must be sha512/],
    [app({ user: undefined }), /app.user is required/],
  ];
  for (const [m, rule] of cases)
    assert.throws(() => parseImageManifest(JSON.stringify(m), 'm.json'), (e) => isBasaltError(e, 'invalid') && rule.test(e.message) && e.message.startsWith('m.json:'));
});

const MANIFEST = JSON.stringify(manifestOf('example.com/app'));
const GOOD: RawEntry[] = [{ path: 'manifest', data: MANIFEST }, { path: 'rootfs' }, { path: 'rootfs/bin' }, { path: 'rootfs/bin/hello', data: 'x' }];

/** [case, entries, compression, valid in strict mode, valid for actool]. */
const ARCHIVES: [string, RawEntry[], 'gzip' | 'bzip2' | 'xz' | 'none', boolean, boolean][] = [
  ['valid, gzip', GOOD, 'gzip', true, true],
  ['valid, bzip2', GOOD, 'bzip2', true, true],
  ['valid, xz', GOOD, 'xz', true, true],
  ['valid, uncompressed', GOOD, 'none', true, true],
  ['valid with ./ names', [{ path: './manifest', data: MANIFEST }, { path: './rootfs' }, { path: './rootfs/a', data: 'a' }], 'gzip', true, true],
  ['no manifest', GOOD.slice(1), 'gzip', false, false],
  ['no rootfs', [GOOD[0] as RawEntry], 'gzip', false, false],
  ['rootfs is a file', [GOOD[0] as RawEntry, { path: 'rootfs', data: 'x' }], 'gzip', false, false],
  ['extra top-level file', [...GOOD, { path: 'extra', data: 'x' }], 'gzip', false, false],
  ['extra top-level directory', [...GOOD, { path: 'etc' }, { path: 'etc/passwd', data: 'x' }], 'gzip', false, false],
  ['entry escaping with ..', [...GOOD, { path: '../evil', data: 'x' }], 'gzip', false, false],
  ['entry with an absolute path', [...GOOD, { path: '/rootfs/abs', data: 'x' }], 'gzip', false, false],
  ['duplicate entry under rootfs', [...GOOD, { path: 'rootfs/bin/hello', data: 'y' }], 'gzip', false, false],
  ['invalid manifest inside', [{ path: 'manifest', data: JSON.stringify({ ...manifestOf('Bad Name') }) }, ...GOOD.slice(1)], 'gzip', false, false],
  ['not an archive', [], 'gzip', false, false],
  ['duplicate manifest (actool concatenates them: bad JSON)', [...GOOD, { path: 'manifest', data: MANIFEST }], 'gzip', false, false],
  ['name sharing the rootfs prefix (actool tests a string prefix)', [...GOOD, { path: 'rootfsx', data: 'x' }], 'gzip', false, true],
  ['hardlink out of rootfs (actool does not check links)', [...GOOD, { path: 'rootfs/link', type: 'hardlink', linkname: 'manifest' }], 'gzip', false, true],
];

test('ACI archives: the layout rules, in strict mode and agreeing with actool in actool mode', async () => {
  const disagreements: string[] = [];
  for (const [i, [label, entries, compression, strictValid, actoolValid]] of ARCHIVES.entries()) {
    const file = join(dir, `archive-${i}.aci`);
    if (label === 'not an archive') await writeFile(file, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]));
    else await writeAciFile(file, entries, compression);
    const peer = runActool(actoolBin, ['validate', '--type=appimage', file]);
    const compat = await outcomeAsync(() => readAci(file, { mode: 'actool' }));
    const strict = i % 4 === 0 ? basalt(['aci', 'validate', file]) : await outcomeAsync(() => readAci(file, { mode: 'strict' }));
    if ((peer.status === 0) !== actoolValid) disagreements.push(`${label}: actool ${peer.status === 0 ? 'accepts' : 'refuses'} it, the table says otherwise (${peer.out.trim()})`);
    if ((compat.status === 0) !== (peer.status === 0)) disagreements.push(`${label}: basalt --mode actool exits ${compat.status}, actool ${peer.status} (${compat.stderr.trim()} | ${peer.out.trim()})`);
    if ((strict.status === 0) !== strictValid) disagreements.push(`${label}: basalt strict exits ${strict.status} (${strict.stderr.trim()})`);
    if (!strictValid) assert.notEqual(strict.stderr.match(/invalid ACI|invalid image manifest|truncated|not an ACI|gzip|unexpected end|incorrect header/), null, `${label}: ${strict.stderr}`);
  }
  assert.deepEqual(disagreements, []);
});

test('strict archive errors say which rule: extra entries, duplicates, escapes', async () => {
  const expect: [RawEntry[], RegExp][] = [
    [[...GOOD, { path: 'extra', data: 'x' }], /entry "extra" is outside rootfs/],
    [[...GOOD, { path: 'rootfs/bin/hello', data: 'y' }], /duplicate entry "rootfs\/bin\/hello"/],
    [[...GOOD, { path: '../evil', data: 'x' }], /has a "\.\." component/],
    [GOOD.slice(1), /no image manifest/],
    // xz goes through the xz program: a reader that stops at a bad entry must not leave it blocked.
    [[{ path: 'manifest', data: MANIFEST }, { path: 'rootfs' }, { path: 'outside', data: 'x'.repeat(4 << 20) }, { path: 'rootfs/big', data: 'y'.repeat(4 << 20) }], /entry "outside" is outside rootfs/],
  ];
  for (const [i, [entries, rule]] of expect.entries()) {
    const file = await writeAciFile(join(dir, `rule-${i}.aci`), entries, i === 4 ? 'xz' : 'gzip');
    const r = basalt(['aci', 'validate', file]);
    assert.equal(r.status, 5);
    assert.match(r.stderr, rule);
  }
});

test('image layouts: both tools accept a good one and refuse extra top-level files, a missing manifest or rootfs', async () => {
  const layout = async (name: string, files: Record<string, string | null>): Promise<string> => {
    const d = join(dir, name);
    await mkdir(d, { recursive: true });
    for (const [p, content] of Object.entries(files)) {
      if (content === null) await mkdir(join(d, p), { recursive: true });
      else {
        await mkdir(join(d, p, '..'), { recursive: true });
        await writeFile(join(d, p), content);
      }
    }
    return d;
  };
  const cases: [string, Record<string, string | null>, boolean][] = [
    ['good', { manifest: MANIFEST, rootfs: null, 'rootfs/a': 'a' }, true],
    ['extra', { manifest: MANIFEST, rootfs: null, notes: 'x' }, false],
    ['nomanifest', { rootfs: null }, false],
    ['norootfs', { manifest: MANIFEST }, false],
    ['badmanifest', { manifest: '{"acKind":"ImageManifest"}', rootfs: null }, false],
  ];
  for (const [name, files, valid] of cases) {
    const d = await layout(`layout-${name}`, files);
    const peer = runActool(actoolBin, ['validate', d]);
    const ours = basalt(['aci', 'validate', d]);
    assert.equal(peer.status === 0, valid, `actool on layout ${name}: ${peer.out}`);
    assert.equal(ours.status === 0, valid, `basalt on layout ${name}: ${ours.stderr}`);
  }
  const missing = basalt(['aci', 'validate', join(dir, 'no-such-file')]);
  assert.equal(missing.status, 3);
});
