import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basaltAsync, basaltAsyncOk } from './async-cli.js';
import { makeImageLayout } from '../harness/layouts.js';
import { startRegistry, type TestRegistry } from '../harness/registry.js';
import { requireTool, run, tempDir } from '../harness/tools.js';
import { appendCosignSignatures, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, REKOR_BUNDLE_ANNOTATION } from '../../src/trust/cosign.js';
import { COSIGN_SIGNATURE_TYPE, createPayload } from '../../src/trust/payload.js';
import { rekorLogId } from '../../src/trust/rekor-set.js';
import { digestOf } from '../../src/oci/digest.js';

/**
 * Keyless cosign signatures under a `sigstoreSigned` policy with `fulcio` and a Rekor key.
 * The CA, the short-lived signing certificates (with Fulcio's e-mail SAN and OIDC issuer
 * extensions) are made by openssl, the Rekor SETs by a test Rekor key; the signatures go to a
 * real registry where `basalt verify --policy` judges them. Every way a keyless signature can
 * be wrong is refused with its reason.
 */
const ISSUER = 'https://issuer.example.test';
const EMAIL = 'release@example.test';
let registry: TestRegistry;
let work: string;
let env: NodeJS.ProcessEnv;
let rekor: { privateKey: KeyObject; publicKey: KeyObject };
const tls = '--tls-verify=false';

interface Leaf {
  cert: string;
  key: KeyObject;
}

/** A CA (self-signed, CA:TRUE) in DIR/NAME.pem with its key. */
function makeCa(name: string): void {
  run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, `${name}.key`), '-out', join(work, `${name}.pem`),
    '-subj', `/O=test/CN=${name}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
}

/** A Fulcio-style leaf for `email` from `issuer`, signed by CA `ca`. */
async function makeLeaf(name: string, ca: string, email: string, issuer: string): Promise<Leaf> {
  const key = join(work, `${name}.key`);
  run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  run('openssl', ['req', '-new', '-key', key, '-subj', '/O=sigstore.dev', '-out', join(work, `${name}.csr`)]);
  const ext = join(work, `${name}.ext`);
  await writeFile(ext, [
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=codeSigning',
    `subjectAltName=critical,email:${email}`,
    `1.3.6.1.4.1.57264.1.1=DER:${Buffer.from(issuer).toString('hex')}`,
    `1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:${issuer}`,
    '',
  ].join('\n'));
  run('openssl', ['x509', '-req', '-in', join(work, `${name}.csr`), '-CA', join(work, `${ca}.pem`), '-CAkey', join(work, `${ca}.key`), '-CAcreateserial',
    '-days', '1', '-extfile', ext, '-out', join(work, `${name}.pem`)]);
  return { cert: await readFile(join(work, `${name}.pem`), 'utf8'), key: createPrivateKey(await readFile(key)) };
}

/** The Rekor bundle annotation for `signature` over `payload` by `signerPem`, logged at `time`. */
function rekorBundle(signature: Buffer, payload: Buffer, signerPem: string, time: number, logKey = rekor.privateKey): string {
  const body = Buffer.from(JSON.stringify({
    apiVersion: '0.0.1',
    kind: 'hashedrekord',
    spec: {
      data: { hash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') } },
      signature: { content: signature.toString('base64'), publicKey: { content: Buffer.from(signerPem).toString('base64') } },
    },
  })).toString('base64');
  const entry = { body, integratedTime: time, logID: rekorLogId(rekor.publicKey), logIndex: 7 };
  const set = sign('sha256', Buffer.from(JSON.stringify(entry)), logKey);
  return JSON.stringify({ SignedEntryTimestamp: set.toString('base64'), Payload: entry });
}

async function digestOfImage(name: string): Promise<string> {
  return (await basaltAsyncOk(['image', 'digest', tls, name], { env })).trim();
}

/** Pushes a repository with one image and one keyless signature made as `tamper` says. */
async function signedRepo(repo: string, leaf: Leaf, tamper: { time?: number; chain?: string; noBundle?: boolean; otherLogKey?: KeyObject; otherSignerPem?: string } = {}): Promise<string> {
  const ref = `${registry.host}/${repo}:1`;
  await basaltAsyncOk(['image', 'copy', '--insecure-policy', '-q', tls, `oci:${join(work, 'src')}:img`, `docker://${ref}`], { env });
  const digest = await digestOfImage(`docker://${ref}`);
  const payload = createPayload(COSIGN_SIGNATURE_TYPE, ref, digest, null);
  const signature = sign('sha256', payload, leaf.key);
  const annotations: Record<string, string> = { [CERTIFICATE_ANNOTATION]: leaf.cert };
  if (tamper.chain !== undefined) annotations[CHAIN_ANNOTATION] = tamper.chain;
  if (!tamper.noBundle) annotations[REKOR_BUNDLE_ANNOTATION] = rekorBundle(signature, payload, tamper.otherSignerPem ?? leaf.cert, tamper.time ?? Math.floor(Date.now() / 1000), tamper.otherLogKey);
  const sigImage = `docker://${registry.host}/${repo}:sha256-${digest.slice('sha256:'.length)}.sig`;
  await appendCosignSignatures(sigImage, [{ payload, signature, annotations, digest: digestOf(payload) }], { tlsVerify: false });
  return `docker://${ref}`;
}

async function verify(image: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return basaltAsync(['verify', tls, '--policy', join(work, 'policy.json'), '--registries.d', join(work, 'registries.d'), '--format', 'json', image], { env });
}

before(async () => {
  requireTool('openssl');
  registry = await startRegistry({ flavour: 'open' });
  work = await tempDir('trust-keyless');
  env = { BASALT_STORE: join(work, 'store'), HOME: work };
  await makeImageLayout(join(work, 'src'), 'img', [{ 'etc/release': 'keyless\n' }]);
  rekor = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  makeCa('fulcio');
  makeCa('rogue');
  await mkdir(join(work, 'registries.d'));
  await writeFile(join(work, 'registries.d', 'sigstore.yaml'), 'default-docker:\n  use-sigstore-attachments: true\n');
  await writeFile(join(work, 'rekor.pub'), rekor.publicKey.export({ format: 'pem', type: 'spki' }));
  await writeFile(join(work, 'policy.json'), JSON.stringify({
    default: [{ type: 'reject' }],
    transports: {
      docker: { [registry.host]: [{ type: 'sigstoreSigned', fulcio: { caPath: join(work, 'fulcio.pem'), oidcIssuer: ISSUER, subjectEmail: EMAIL }, rekorPublicKeyPath: join(work, 'rekor.pub'), signedIdentity: { type: 'matchRepository' } }] },
      oci: { '': [{ type: 'insecureAcceptAnything' }] },
    },
  }));
});

after(async () => {
  await registry?.stop();
});

test('a keyless signature from the trusted CA, identity and Rekor log is accepted', async () => {
  const image = await signedRepo('keyless/good', await makeLeaf('good', 'fulcio', EMAIL, ISSUER));
  const r = await verify(image);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const decision = JSON.parse(r.stdout) as { accepted: boolean; requirements: { signatures: { format: string }[] }[] };
  assert.equal(decision.accepted, true);
  assert.equal(decision.requirements[0]?.signatures[0]?.format, 'cosign');
});

test('keyless signatures are refused for the wrong identity, issuer, CA, time, log key or logged signer', async () => {
  const good = await makeLeaf('good2', 'fulcio', EMAIL, ISSUER);
  const cases: { repo: string; leaf: Leaf; tamper?: Parameters<typeof signedRepo>[2]; reason: RegExp }[] = [
    { repo: 'keyless/email', leaf: await makeLeaf('email', 'fulcio', 'mallory@example.test', ISSUER), reason: /"mallory@example\.test", not the policy's subjectEmail/ },
    { repo: 'keyless/issuer', leaf: await makeLeaf('issuer', 'fulcio', EMAIL, 'https://evil.example.test'), reason: /OIDC issuer "https:\/\/evil\.example\.test"/ },
    { repo: 'keyless/rogue', leaf: await makeLeaf('rogue-leaf', 'rogue', EMAIL, ISSUER), reason: /does not chain to the policy's Fulcio CA/ },
    { repo: 'keyless/late', leaf: good, tamper: { time: Math.floor(Date.now() / 1000) + 3 * 86400 }, reason: /not valid at the logged time/ },
    { repo: 'keyless/nobundle', leaf: good, tamper: { noBundle: true }, reason: /has no Rekor bundle/ },
    { repo: 'keyless/otherlog', leaf: good, tamper: { otherLogKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey }, reason: /no trusted Rekor key signed/ },
    { repo: 'keyless/othercert', leaf: good, tamper: { otherSignerPem: (await makeLeaf('other', 'fulcio', EMAIL, ISSUER)).cert }, reason: /logs another certificate/ },
  ];
  for (const c of cases) {
    const r = await verify(await signedRepo(c.repo, c.leaf, c.tamper));
    assert.equal(r.status, 8, `${c.repo}: ${r.stderr}${r.stdout}`);
    assert.match(r.stdout + r.stderr, c.reason, c.repo);
  }
});

test('a fulcio policy without a Rekor key, or with pki, is refused as a policy', async () => {
  const image = await signedRepo('keyless/policy', await makeLeaf('policy', 'fulcio', EMAIL, ISSUER));
  const bad = join(work, 'bad-policy.json');
  await writeFile(bad, JSON.stringify({ default: [{ type: 'sigstoreSigned', fulcio: { caPath: join(work, 'fulcio.pem'), oidcIssuer: ISSUER, subjectEmail: EMAIL } }] }));
  const r = await basaltAsync(['verify', tls, '--policy', bad, image], { env });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /fulcio requires a Rekor public key/);
  await writeFile(bad, JSON.stringify({ default: [{ type: 'sigstoreSigned', pki: { caRootsPath: '/x' } }] }));
  const p = await basaltAsync(['verify', tls, '--policy', bad, '--registries.d', join(work, 'registries.d'), image], { env });
  assert.equal(p.status, 8, p.stderr);
  assert.match(p.stdout + p.stderr, /pki.*not verified by basalt/);
});

test('a keyed policy with a Rekor key needs a SET that logs that key', async () => {
  const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicPem = pair.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  await writeFile(join(work, 'keyed.pub'), publicPem);
  const policy = join(work, 'keyed-policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'sigstoreSigned', keyPath: join(work, 'keyed.pub'), rekorPublicKeyPath: join(work, 'rekor.pub') }] }));
  const check = (image: string) => basaltAsync(['verify', tls, '--policy', policy, '--registries.d', join(work, 'registries.d'), image], { env });
  const logged = await check(await signedRepo('keyed/logged', { cert: publicPem, key: pair.privateKey }));
  assert.equal(logged.status, 0, logged.stderr + logged.stdout);
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const wrong = await check(await signedRepo('keyed/wrong', { cert: publicPem, key: pair.privateKey }, { otherSignerPem: other }));
  assert.equal(wrong.status, 8);
  assert.match(wrong.stdout + wrong.stderr, /Rekor entry that logs another key/);
  const unlogged = await check(await signedRepo('keyed/unlogged', { cert: publicPem, key: pair.privateKey }, { noBundle: true }));
  assert.equal(unlogged.status, 8);
  assert.match(unlogged.stdout + unlogged.stderr, /has no Rekor bundle/);
});
