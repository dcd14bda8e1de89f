import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basalt, basaltOk } from '../harness/cli.js';
import { requireTool, run, tempDir } from '../harness/tools.js';
import { loadPrivateKey, loadPublicKey, publicKeyOf, signBytes, verifyBytes } from '../../src/trust/keys.js';
import { decryptPrivateKey, pemDecode } from '../../src/trust/cosign-key.js';
import { isBasaltError } from '../../src/oci/errors.js';

/**
 * Keys in cosign's files. The peers: openssl (checks the PKIX public key and ECDSA signatures)
 * and PyNaCl + Python's hashlib.scrypt, an independent implementation of the
 * go-securesystemslib encrypted-key format, which writes a key basalt must read and reads the
 * key basalt writes.
 */
const PYTHON = '/usr/bin/python3';
const PY_CRYPT = `
import base64, hashlib, json, os, sys, nacl.secret
def key(pw, salt, p): return hashlib.scrypt(pw.encode(), salt=salt, n=p['N'], r=p['r'], p=p['p'], maxmem=256*1024*1024, dklen=32)
def pem_body(text):
    lines = [l for l in text.splitlines() if l and not l.startswith('-----')]
    return base64.b64decode(''.join(lines))
mode, pw, path = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == 'decrypt':
    label = open(path).read().splitlines()[0]
    d = json.loads(pem_body(open(path).read()))
    assert d['kdf']['name'] == 'scrypt' and d['cipher']['name'] == 'nacl/secretbox', d
    k = key(pw, base64.b64decode(d['kdf']['salt']), d['kdf']['params'])
    box = nacl.secret.SecretBox(k)
    der = box.decrypt(base64.b64decode(d['ciphertext']), base64.b64decode(d['cipher']['nonce']))
    sys.stdout.write(label + '\\n' + base64.b64encode(der).decode())
else:
    der = open(path, 'rb').read()
    salt, nonce = os.urandom(32), os.urandom(24)
    params = {'N': 32768, 'r': 8, 'p': 1}
    ct = nacl.secret.SecretBox(key(pw, salt, params)).encrypt(der, nonce).ciphertext
    doc = {'kdf': {'name': 'scrypt', 'params': params, 'salt': base64.b64encode(salt).decode()}, 'cipher': {'name': 'nacl/secretbox', 'nonce': base64.b64encode(nonce).decode()}, 'ciphertext': base64.b64encode(ct).decode()}
    b = base64.b64encode(json.dumps(doc).encode()).decode()
    sys.stdout.write('-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\\n' + '\\n'.join(b[i:i+64] for i in range(0, len(b), 64)) + '\\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\\n')
`;

function python(args: string[]): string {
  return run(PYTHON, ['-c', PY_CRYPT, ...args]);
}

test('basalt keygen writes cosign.key (encrypted, mode 0600) and cosign.pub; PyNaCl decrypts it; openssl checks a signature', async () => {
  requireTool('openssl');
  requireTool(PYTHON, 'install python3-nacl (./scripts/setup does)');
  const dir = await tempDir('keygen');
  const env = { BASALT_PASSWORD: 'correct horse' };
  const r = basalt(['keygen'], { env, cwd: dir });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /Private key written to cosign\.key/);
  const keyText = await readFile(join(dir, 'cosign.key'), 'utf8');
  assert.match(keyText, /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n/);
  assert.equal((await stat(join(dir, 'cosign.key'))).mode & 0o777, 0o600);
  const pubText = await readFile(join(dir, 'cosign.pub'), 'utf8');
  assert.match(pubText, /^-----BEGIN PUBLIC KEY-----\n/);
  // openssl reads the public key as a P-256 key.
  assert.match(run('openssl', ['pkey', '-pubin', '-in', join(dir, 'cosign.pub'), '-noout', '-text']), /prime256v1|P-256/);
  // An independent implementation opens the private key with the passphrase.
  const [label, derB64] = python(['decrypt', 'correct horse', join(dir, 'cosign.key')]).split('\n');
  assert.equal(label, '-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----');
  await writeFile(join(dir, 'key.der'), Buffer.from(derB64 as string, 'base64'));
  const derived = run('openssl', ['pkey', '-inform', 'DER', '-in', join(dir, 'key.der'), '-pubout']);
  assert.equal(derived.trim(), pubText.trim(), 'the decrypted private key belongs to cosign.pub');
  // A signature basalt makes with the key verifies with openssl.
  const priv = await loadPrivateKey(join(dir, 'cosign.key'), async () => 'correct horse');
  const data = Buffer.from('payload bytes');
  await writeFile(join(dir, 'data'), data);
  await writeFile(join(dir, 'sig'), signBytes(data, priv));
  assert.match(run('openssl', ['dgst', '-sha256', '-verify', join(dir, 'cosign.pub'), '-signature', join(dir, 'sig'), join(dir, 'data')]), /Verified OK/);
});

test('a key encrypted by another implementation under the older COSIGN label is read', async () => {
  requireTool('openssl');
  requireTool(PYTHON, 'install python3-nacl (./scripts/setup does)');
  const dir = await tempDir('keygen-foreign');
  run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(dir, 'k.pem')]);
  run('openssl', ['pkcs8', '-topk8', '-nocrypt', '-in', join(dir, 'k.pem'), '-outform', 'DER', '-out', join(dir, 'k.der')]);
  run('openssl', ['pkey', '-in', join(dir, 'k.pem'), '-pubout', '-out', join(dir, 'k.pub')]);
  await writeFile(join(dir, 'foreign.key'), python(['encrypt', 'pass phrase', join(dir, 'k.der')]));
  const priv = await loadPrivateKey(join(dir, 'foreign.key'), async () => 'pass phrase');
  const pub = await loadPublicKey(join(dir, 'k.pub'));
  const sig = signBytes(Buffer.from('x'), priv);
  assert.equal(verifyBytes(Buffer.from('x'), sig, pub), true);
  assert.equal(verifyBytes(Buffer.from('y'), sig, pub), false);
  assert.equal(publicKeyOf(priv).export({ format: 'pem', type: 'spki' }).toString().trim(), (await readFile(join(dir, 'k.pub'), 'utf8')).trim());
});

test('a wrong passphrase, a corrupt key file and a public key given as private key are refused clearly', async () => {
  const dir = await tempDir('keygen-bad');
  basaltOk(['keygen', '--output-key-prefix', join(dir, 'release')], { env: { COSIGN_PASSWORD: 'right' } });
  await assert.rejects(loadPrivateKey(join(dir, 'release.key'), async () => 'wrong'), (e: unknown) => isBasaltError(e, 'auth') && /wrong passphrase/.test(e.message) && e.message.includes('release.key'));
  const text = await readFile(join(dir, 'release.key'), 'utf8');
  const { body } = pemDecode(text, 'k');
  const doc = JSON.parse(body.toString()) as { ciphertext: string };
  const ct = Buffer.from(doc.ciphertext, 'base64');
  ct[ct.length - 1] = (ct[ct.length - 1] as number) ^ 1;
  doc.ciphertext = ct.toString('base64');
  const tampered = `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${Buffer.from(JSON.stringify(doc)).toString('base64')}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`;
  await assert.rejects(decryptPrivateKey(tampered, 'right', 'tampered key'), (e: unknown) => isBasaltError(e, 'auth'));
  await writeFile(join(dir, 'junk.key'), 'hello');
  await assert.rejects(loadPrivateKey(join(dir, 'junk.key'), async () => 'x'), (e: unknown) => isBasaltError(e, 'invalid') && /not a PEM file/.test(e.message));
  await assert.rejects(loadPrivateKey(join(dir, 'release.pub'), async () => 'x'), (e: unknown) => isBasaltError(e, 'invalid'));
  await assert.rejects(loadPublicKey(join(dir, 'release.key')), (e: unknown) => isBasaltError(e, 'invalid') && /not a PUBLIC KEY/.test(e.message));
  const hugeN = Buffer.from(JSON.stringify({ kdf: { name: 'scrypt', params: { N: 1 << 30, r: 8, p: 1 }, salt: 'AA==' }, cipher: { name: 'nacl/secretbox', nonce: Buffer.alloc(24).toString('base64') }, ciphertext: 'AA==' })).toString('base64');
  await assert.rejects(decryptPrivateKey(`-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n${hugeN}\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n`, 'x', 'hostile key'), /scrypt N=/);
});

test('keygen refuses to overwrite keys unless --force, and needs a terminal without a password variable', async () => {
  const dir = await tempDir('keygen-clobber');
  const prefix = join(dir, 'k');
  basaltOk(['keygen', '--output-key-prefix', prefix], { env: { BASALT_PASSWORD: 'a' } });
  const before = await readFile(`${prefix}.pub`, 'utf8');
  const again = basalt(['keygen', '--output-key-prefix', prefix], { env: { BASALT_PASSWORD: 'a' } });
  assert.equal(again.status, 2);
  assert.match(again.stderr, /k\.key already exists/);
  assert.equal(await readFile(`${prefix}.pub`, 'utf8'), before, 'nothing was replaced');
  basaltOk(['keygen', '--output-key-prefix', prefix, '--force'], { env: { BASALT_PASSWORD: 'a' } });
  assert.notEqual(await readFile(`${prefix}.pub`, 'utf8'), before);
  const noTty = basalt(['keygen', '--output-key-prefix', join(dir, 'other')], { env: { BASALT_PASSWORD: undefined, COSIGN_PASSWORD: undefined }, input: '' });
  assert.equal(noTty.status, 2);
  assert.match(noTty.stderr, /standard input is not a terminal/);
});
