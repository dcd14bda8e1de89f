import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parsePolicy, requirementsFor, loadPolicy, acceptsUnsigned } from '../../src/trust/policy.js';
import { imageIdentity, dockerNamespaces } from '../../src/trust/image-identity.js';
import { identityMatches } from '../../src/trust/identity-match.js';
import { loadRegistriesD, signatureStorageFor } from '../../src/trust/registries-d.js';
import { parseReference } from '../../src/oci/reference.js';
import { isBasaltError } from '../../src/oci/errors.js';
import { tempDir } from '../harness/tools.js';

const KEY = { type: 'sigstoreSigned', keyData: Buffer.from('k').toString('base64') };

function policyError(doc: unknown, pattern: RegExp): void {
  const text = typeof doc === 'string' ? doc : JSON.stringify(doc);
  assert.throws(
    () => parsePolicy(text, '/etc/test-policy.json'),
    (e: unknown) => isBasaltError(e, 'invalid') && e.message.includes('/etc/test-policy.json') && pattern.test(e.message),
  );
}

test('scopes apply from most to least specific, as containers/image orders them', () => {
  const doc = {
    default: [{ type: 'reject' }],
    transports: {
      docker: {
        'reg.example.com:5000/team/app:1': [{ type: 'insecureAcceptAnything' }],
        'reg.example.com:5000/team/app': [KEY],
        'reg.example.com:5000/team': [{ type: 'reject' }],
        'reg.example.com:5000': [KEY, KEY],
        '*.example.com': [{ type: 'insecureAcceptAnything' }, { type: 'reject' }],
        '': [{ type: 'insecureAcceptAnything' }],
      },
      oci: { '/srv/images': [KEY] },
    },
  };
  const policy = parsePolicy(JSON.stringify(doc), 'p.json');
  const scopeOf = (name: string): string => requirementsFor(policy, imageIdentity(name)).scope;
  assert.equal(scopeOf('docker://reg.example.com:5000/team/app:1'), 'transports.docker["reg.example.com:5000/team/app:1"]');
  assert.equal(scopeOf('docker://reg.example.com:5000/team/app:2'), 'transports.docker["reg.example.com:5000/team/app"]');
  assert.equal(scopeOf('docker://reg.example.com:5000/team/other:1'), 'transports.docker["reg.example.com:5000/team"]');
  assert.equal(scopeOf('docker://reg.example.com:5000/solo:1'), 'transports.docker["reg.example.com:5000"]');
  assert.equal(scopeOf('docker://mirror.example.com/x:1'), 'transports.docker["*.example.com"]');
  assert.equal(scopeOf('docker://quay.io/x:1'), 'transports.docker[""]');
  assert.equal(scopeOf('oci:/srv/images/app:latest'), 'transports.oci["/srv/images"]');
  assert.equal(scopeOf('oci:/tmp/elsewhere:latest'), 'default');
  assert.equal(scopeOf('docker-archive:/tmp/a.tar'), 'default');
});

test('docker namespaces end with wildcard parent domains, port stripped', () => {
  assert.deepEqual(dockerNamespaces(parseReference('a.b.example.com:443/ns/repo:1')), [
    'a.b.example.com:443/ns/repo',
    'a.b.example.com:443/ns',
    'a.b.example.com:443',
    '*.b.example.com',
    '*.example.com',
    '*.com',
  ]);
});

test('every signedIdentity kind matches as containers/image defines it', () => {
  const tagged = parseReference('reg.io/team/app:1');
  const digested = parseReference(`reg.io/team/app@sha256:${'1'.repeat(64)}`);
  const m = (rule: Parameters<typeof identityMatches>[0], image: typeof tagged | undefined, signed: string): boolean => identityMatches(rule, image, signed);
  assert.equal(m({ type: 'matchExact' }, tagged, 'reg.io/team/app:1'), true);
  assert.equal(m({ type: 'matchExact' }, tagged, 'reg.io/team/app:2'), false);
  assert.equal(m({ type: 'matchExact' }, digested, 'reg.io/team/app:1'), false);
  assert.equal(m({ type: 'matchRepoDigestOrExact' }, tagged, 'reg.io/team/app:1'), true);
  assert.equal(m({ type: 'matchRepoDigestOrExact' }, tagged, 'reg.io/team/app:2'), false, 'a tag must match exactly');
  assert.equal(m({ type: 'matchRepoDigestOrExact' }, digested, 'reg.io/team/app:whatever'), true, 'by digest, any tag of the repository');
  assert.equal(m({ type: 'matchRepoDigestOrExact' }, digested, 'reg.io/team/other:1'), false);
  assert.equal(m({ type: 'matchRepository' }, tagged, 'reg.io/team/app:9'), true);
  assert.equal(m({ type: 'matchRepository' }, tagged, 'reg.io/team/app2:1'), false);
  assert.equal(m({ type: 'matchRepository' }, undefined, 'reg.io/team/app:1'), false, 'no docker name: nothing to match');
  assert.equal(m({ type: 'exactReference', dockerReference: 'other.io/x:2' }, tagged, 'other.io/x:2'), true);
  assert.equal(m({ type: 'exactReference', dockerReference: 'other.io/x:2' }, tagged, 'other.io/x:3'), false);
  assert.equal(m({ type: 'exactReference', dockerReference: 'other.io/x:2' }, undefined, 'other.io/x:2'), true, 'layouts can use exactReference');
  assert.equal(m({ type: 'exactRepository', dockerRepository: 'other.io/x' }, tagged, 'other.io/x:anything'), true);
  assert.equal(m({ type: 'exactRepository', dockerRepository: 'other.io/x' }, tagged, 'other.io/y:1'), false);
  const remap = { type: 'remapIdentity' as const, prefix: 'mirror.local/cache', signedPrefix: 'reg.io/team' };
  assert.equal(m(remap, parseReference('mirror.local/cache/app:1'), 'reg.io/team/app:1'), true);
  assert.equal(m(remap, parseReference('mirror.local/cache/app:1'), 'reg.io/team/app:2'), false);
  assert.equal(m(remap, parseReference('mirror.local/cachex/app:1'), 'reg.io/team/app:1'), false, 'prefix must end at a component boundary');
  assert.equal(m(remap, parseReference('reg.io/team/app:1'), 'reg.io/team/app:1'), true, 'no prefix: as matchRepoDigestOrExact');
  assert.equal(m({ type: 'matchExact' }, tagged, 'NOT a reference'), false);
});

test('unparseable and invalid policies are refused naming the file', () => {
  policyError('{"default": [', /not valid JSON/);
  policyError({ transports: {} }, /"default" is required/);
  policyError({ default: [] }, /empty list of requirements/);
  policyError({ default: [{ type: 'acceptEverything' }] }, /unknown requirement type "acceptEverything"/);
  policyError({ default: [{ type: 'reject', keyPath: '/x' }] }, /unknown field "keyPath"/);
  policyError({ default: [{ type: 'signedBy', keyType: 'X509Certificates', keyPath: '/k' }] }, /not supported/);
  policyError({ default: [{ type: 'signedBy', keyType: 'GPGKeys' }] }, /exactly one of keyPath/);
  policyError({ default: [{ type: 'sigstoreSigned', keyPath: '/a', keyData: 'AAAA' }] }, /exactly one of/);
  policyError({ default: [{ type: 'sigstoreSigned' }] }, /one of keyPath/);
  policyError({ default: [{ ...KEY, signedIdentity: { type: 'matchEverything' } }] }, /unknown signedIdentity type/);
  policyError({ default: [{ ...KEY, signedIdentity: { type: 'exactReference', dockerReference: 'reg.io/app' } }] }, /has no tag or digest/);
  policyError({ default: [{ ...KEY, signedIdentity: { type: 'exactRepository', dockerRepository: 'reg.io/app:1' } }] }, /without tag or digest/);
  policyError({ default: [{ ...KEY, signedIdentity: { type: 'remapIdentity', prefix: 'a.io/x:1', signedPrefix: 'b.io/y' } }] }, /is not a host/);
  policyError({ default: [{ type: 'reject' }], transports: { docker: { 'a.io': 'reject' } } }, /expected a list/);
  policyError({ default: [{ type: 'reject' }], extra: 1 }, /unknown field "extra"/);
});

test('every requirement and identity form parses; keyPaths and keyDatas collect keys', () => {
  const p = parsePolicy(
    JSON.stringify({
      default: [{ type: 'insecureAcceptAnything' }],
      transports: {
        docker: {
          'a.io': [{ type: 'signedBy', keyType: 'GPGKeys', keyPaths: ['/k1', '/k2'], signedIdentity: { type: 'matchRepository' } }],
          'b.io': [{ type: 'sigstoreSigned', keyDatas: ['QQ==', 'Qg=='], signedIdentity: { type: 'remapIdentity', prefix: 'b.io', signedPrefix: 'c.io/ns' } }],
          'c.io': [{ type: 'sigstoreSigned', fulcio: { caPath: '/ca', oidcIssuer: 'https://x', subjectEmail: 'a@b' }, rekorPublicKeyPath: '/r', signedIdentity: { type: 'matchExact' } }],
        },
      },
    }),
    'p',
  );
  const a = p.transports.get('docker')?.get('a.io')?.[0];
  assert.ok(a?.type === 'signedBy');
  assert.deepEqual(a.keys.paths, ['/k1', '/k2']);
  const b = p.transports.get('docker')?.get('b.io')?.[0];
  assert.ok(b?.type === 'sigstoreSigned');
  assert.deepEqual(b.keys.data.map((d) => d.toString()), ['A', 'B']);
  const c = p.transports.get('docker')?.get('c.io')?.[0];
  assert.ok(c?.type === 'sigstoreSigned' && c.fulcio?.oidcIssuer === 'https://x' && c.fulcio.subjectEmail === 'a@b' && c.fulcio.ca.paths[0] === '/ca' && c.rekorKeys?.paths[0] === '/r');
  assert.equal(acceptsUnsigned(p.default), true);
  assert.equal(acceptsUnsigned(p.transports.get('docker')?.get('a.io') ?? []), false);
});

test('a policy file that does not exist is a not-found error naming it', async () => {
  await assert.rejects(loadPolicy('/nonexistent/policy.json'), (e: unknown) => isBasaltError(e, 'not-found') && e.message.includes('/nonexistent/policy.json'));
});

test('registries.d: most specific docker scope, default-docker, old key names; duplicates and bad YAML refused', async () => {
  const dir = await tempDir('registries-d');
  await writeFile(join(dir, 'a.yaml'), 'default-docker:\n  lookaside: file:///var/lib/sigs\ndocker:\n  reg.io/team:\n    use-sigstore-attachments: true\n    lookaside-staging: file:///staging\n');
  await writeFile(join(dir, 'b.yaml'), 'docker:\n  reg.io/team/app:\n    sigstore: https://sigs.example.com/x\n');
  await writeFile(join(dir, 'ignored.txt'), 'not: [yaml');
  const conf = await loadRegistriesD(dir);
  const team = signatureStorageFor(conf, imageIdentity('docker://reg.io/team/other:1'));
  assert.equal(team.useSigstoreAttachments, true);
  assert.equal(team.lookasideStaging, 'file:///staging');
  const app = signatureStorageFor(conf, imageIdentity('docker://reg.io/team/app:1'));
  assert.equal(app.lookaside, 'https://sigs.example.com/x');
  assert.equal(app.useSigstoreAttachments, false, 'the more specific scope replaces, it does not merge');
  const other = signatureStorageFor(conf, imageIdentity('docker://quay.io/x:1'));
  assert.equal(other.lookaside, 'file:///var/lib/sigs');
  assert.equal(signatureStorageFor(conf, imageIdentity('oci:/tmp/l:x')).useSigstoreAttachments, true, 'layouts keep attachments beside the image');

  const dup = await tempDir('registries-d-dup');
  await writeFile(join(dup, 'a.yaml'), 'docker:\n  reg.io:\n    lookaside: file:///a\n');
  await writeFile(join(dup, 'b.yaml'), 'docker:\n  reg.io:\n    lookaside: file:///b\n');
  await assert.rejects(loadRegistriesD(dup), (e: unknown) => isBasaltError(e, 'invalid') && /"reg.io" is defined more than once/.test(e.message));
  const bad = await tempDir('registries-d-bad');
  await writeFile(join(bad, 'x.yaml'), 'docker: [unclosed');
  await assert.rejects(loadRegistriesD(bad), (e: unknown) => isBasaltError(e, 'invalid') && e.message.includes(join(bad, 'x.yaml')));
  await writeFile(join(bad, 'x.yaml'), 'docker:\n  reg.io:\n    lookaside: ftp://x\n');
  await assert.rejects(loadRegistriesD(bad), /must be a file:\/\/, http:\/\/ or https:\/\/ URL/);
  assert.deepEqual((await loadRegistriesD(join(bad, 'missing'))).docker.size, 0, 'a missing directory is an empty configuration');
});
