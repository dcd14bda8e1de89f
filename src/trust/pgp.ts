import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { Key, KeyID, Message } from 'openpgp';
import { BasaltError, ioError } from '../oci/errors.js';

/**
 * OpenPGP "simple signing" (the containers-signature format): a signed, not detached,
 * binary OpenPGP message whose literal data is the JSON payload. skopeo standalone-sign and
 * podman/containers-image write and read exactly this.
 *
 * Signing runs gpg itself; verification uses openpgp.js alone. Why the split:
 * - The signer's keys live in gpg (a keyring, gpg-agent, maybe a smartcard). Running gpg
 *   keeps the secret key where it is: no export of secret material, gpg-agent's cache and
 *   pinentry keep working, hardware keys work, and the bytes are made by the same engine
 *   (gpgme → gpg) that skopeo uses. openpgp.js would need the secret key exported with its
 *   passphrase and cannot use a card.
 * - The device verifying an update has no gpg home and should not need one: a keyring file
 *   (or policy.json keyData) and openpgp.js are enough, and no trust database gets involved.
 */

export interface PgpSigner {
  keyId: string;
  gnupgHome?: string;
  passphrase?: string;
}

export interface VerifiedSimpleSignature {
  payload: Buffer;
  signerFingerprint: string;
}

/** gpg waiting on a pinentry nobody answers must not hang a build forever. */
const GPG_TIMEOUT_MS = 5 * 60_000;

interface GpgResult {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

function runGpg(args: string[], input: Buffer, passphrase: string | undefined, env: NodeJS.ProcessEnv): Promise<GpgResult> {
  return new Promise((resolve, reject) => {
    // fd 3 carries the passphrase so it never appears in argv or the environment.
    const child = spawn('gpg', args, { env, stdio: ['pipe', 'pipe', 'pipe', 'pipe'], timeout: GPG_TIMEOUT_MS });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') reject(new BasaltError('tool', 'gpg is not installed; it is needed to sign with --gpg-key', { hint: 'install the gnupg package' }));
      else reject(new BasaltError('tool', `running gpg: ${e.message}`, { cause: e }));
    });
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr: err }));
    const passFd = child.stdio[3] as Writable;
    // gpg may exit without reading its inputs (unknown key): ignore EPIPE, the exit status tells.
    const ignore = (): void => {};
    child.stdin.on('error', ignore);
    passFd.on('error', ignore);
    passFd.end(passphrase !== undefined ? `${passphrase}\n` : '');
    child.stdin.end(input);
  });
}

function gpgFailure(keyId: string, r: GpgResult): BasaltError {
  // stderr interleaves gpg's messages with its --status-fd lines; the messages say it best.
  const messages = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('[GNUPG:]'));
  const detail = [...new Set(messages)].slice(-2).join('; ') || `exit status ${r.status}`;
  if (/no secret key|secret key not available|No such user ID/i.test(r.stderr))
    return new BasaltError('not-found', `gpg has no secret key "${keyId}": ${detail}`, { hint: 'list signing keys with "gpg --list-secret-keys" (or set the gpg home) and pass one of them' });
  if (/bad passphrase|no passphrase given|inappropriate ioctl|operation cancelled|pinentry/i.test(r.stderr))
    return new BasaltError('auth', `gpg could not unlock the secret key "${keyId}": ${detail}`, { hint: 'give the key\'s passphrase (BASALT_PASSWORD) or unlock it in gpg-agent first' });
  if (r.status === null) return new BasaltError('tool', `gpg signing with "${keyId}" did not finish within ${GPG_TIMEOUT_MS / 1000} s`, { hint: 'gpg is probably waiting for a passphrase: give it with BASALT_PASSWORD' });
  return new BasaltError('tool', `gpg failed to sign with "${keyId}": ${detail}`);
}

/** A containers-signature: an OpenPGP signed (not detached) binary message over the payload, as skopeo standalone-sign writes. */
export async function createSimpleSignature(payload: Buffer, signer: PgpSigner): Promise<Buffer> {
  if (signer.keyId.trim() === '') throw new BasaltError('usage', 'no gpg key given to sign with', { hint: 'pass a key ID, fingerprint or user ID from "gpg --list-secret-keys"' });
  const args = ['--batch', '--no-tty', '--status-fd', '2'];
  if (signer.gnupgHome !== undefined) args.push('--homedir', signer.gnupgHome);
  // Loopback pinentry only when we hold the passphrase; otherwise gpg-agent (cache, pinentry, card) decides.
  if (signer.passphrase !== undefined) args.push('--pinentry-mode', 'loopback', '--passphrase-fd', '3');
  args.push('--local-user', signer.keyId, '--sign', '--output', '-');
  const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C', LANGUAGE: 'C' };
  if (signer.gnupgHome !== undefined) env.GNUPGHOME = signer.gnupgHome;
  const r = await runGpg(args, payload, signer.passphrase, env);
  if (r.status !== 0 || r.stdout.length === 0 || !/\[GNUPG:\] SIG_CREATED /.test(r.stderr)) throw gpgFailure(signer.keyId, r);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------
// Verification (openpgp.js only)

type OpenPgp = typeof import('openpgp');
let openpgpModule: Promise<OpenPgp> | undefined;
/** Loaded on first use: commands that never verify do not pay for evaluating openpgp.js. */
function loadOpenPgp(): Promise<OpenPgp> {
  openpgpModule ??= import('openpgp');
  return openpgpModule;
}

/** A containers-signature is never bigger than this (containers/image's limit for lookaside blobs). */
const MAX_SIGNATURE_BYTES = 4 * 1024 * 1024;

const ARMOR_BLOCK = /-----BEGIN PGP PUBLIC KEY BLOCK-----[\s\S]*?-----END PGP PUBLIC KEY BLOCK-----/g;

function looksArmored(data: Buffer): boolean {
  return data.subarray(0, 64).toString('latin1').trimStart().startsWith('-----BEGIN PGP');
}

/** gpg ≥ 2.1's pubring.kbx is a keybox, not OpenPGP packets: say so instead of "invalid packet". */
function isKeybox(data: Buffer): boolean {
  return data.length >= 12 && data.subarray(8, 12).toString('latin1') === 'KBXf';
}

async function parseKeys(data: Buffer, source: string): Promise<Key[]> {
  const openpgp = await loadOpenPgp();
  if (isKeybox(data))
    throw new BasaltError('invalid', `${source} is a gpg keybox (pubring.kbx), not an OpenPGP keyring`, { hint: 'export the public keys with "gpg --export KEYID > key.gpg" and use that file' });
  try {
    if (looksArmored(data)) {
      const blocks = data.toString('utf8').match(ARMOR_BLOCK) ?? [];
      if (blocks.length === 0) throw new Error('no "PUBLIC KEY BLOCK" in the armored text');
      const keys: Key[] = [];
      for (const block of blocks) keys.push(...(await openpgp.readKeys({ armoredKeys: block })));
      return keys;
    }
    return await openpgp.readKeys({ binaryKeys: data });
  } catch (e) {
    if (e instanceof BasaltError) throw e;
    throw new BasaltError('invalid', `${source} holds no readable OpenPGP public keys: ${(e as Error).message}`, {
      hint: 'give a file written by "gpg --export" (binary) or "gpg --export --armor"',
      cause: e,
    });
  }
}

async function loadKeyring(keyringPaths: string[], keyData: Buffer[]): Promise<Key[]> {
  const keys: Key[] = [];
  for (const path of keyringPaths) {
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (e) {
      throw ioError(`reading keyring ${path}`, e);
    }
    if (data.length === 0) throw new BasaltError('invalid', `keyring ${path} is empty`, { hint: 'export the signer\'s public key into it with "gpg --export KEYID > FILE"' });
    keys.push(...(await parseKeys(data, `keyring ${path}`)));
  }
  for (const [i, data] of keyData.entries()) {
    if (data.length === 0) throw new BasaltError('invalid', `keyData #${i + 1} is empty`, { hint: 'put the base64 of "gpg --export KEYID" in policy.json keyData' });
    keys.push(...(await parseKeys(data, `keyData #${i + 1}`)));
  }
  if (keys.length === 0)
    throw new BasaltError('policy', 'no OpenPGP public keys to verify the signature with', { hint: 'give a keyring file (gpg --export KEYID > FILE) or policy.json keyPath/keyData' });
  return keys;
}

function refuse(message: string, hint?: string, cause?: unknown): BasaltError {
  return new BasaltError('policy', message, { ...(hint !== undefined ? { hint } : {}), ...(cause !== undefined ? { cause } : {}) });
}

async function readSignedMessage(signature: Buffer): Promise<Message<Uint8Array>> {
  const openpgp = await loadOpenPgp();
  if (signature.length === 0) throw refuse('the signature is empty (0 bytes)');
  if (signature.length > MAX_SIGNATURE_BYTES) throw refuse(`the signature is ${signature.length} bytes, more than the ${MAX_SIGNATURE_BYTES} a containers-signature may have`);
  if (looksArmored(signature))
    throw refuse('the signature is ASCII-armored; a containers-signature is a binary OpenPGP message', 'sign with "skopeo standalone-sign" or "basalt sign --gpg-key" (gpg --sign, not --armor)');
  try {
    return await openpgp.readMessage({ binaryMessage: new Uint8Array(signature) });
  } catch (e) {
    throw refuse(`the signature is corrupt or not an OpenPGP message: ${(e as Error).message}`, 'fetch or write the signature again; a containers-signature is the binary output of gpg --sign', e);
  }
}

function hex(keyId: KeyID): string {
  return keyId.toHex().toUpperCase();
}

/**
 * keyringPaths: files of public keys, binary or armored (gpg --export output, or a keyring file); keyData: such key bytes inline (policy.json keyData).
 * Throws BasaltError('policy', ...) naming why when the signature is bad, by an unknown key, expired, etc.
 * Returns the signed payload bytes (the caller parses the JSON).
 */
export async function verifySimpleSignature(signature: Buffer, keyringPaths: string[], keyData?: Buffer[]): Promise<VerifiedSimpleSignature> {
  const openpgp = await loadOpenPgp();
  const keys = await loadKeyring(keyringPaths, keyData ?? []);
  const message = await readSignedMessage(signature);

  if (message.packets.findPacket(openpgp.enums.packet.publicKeyEncryptedSessionKey) ||
      message.packets.findPacket(openpgp.enums.packet.symEncryptedSessionKey) ||
      message.packets.findPacket(openpgp.enums.packet.symEncryptedIntegrityProtectedData))
    throw refuse('the signature is an encrypted OpenPGP message, not a signed one');
  const signingKeyIds = message.getSigningKeyIDs();
  const literal = message.getLiteralData();
  if (literal === null) {
    if (signingKeyIds.length > 0 || message.packets.findPacket(openpgp.enums.packet.signature))
      throw refuse('the signature is a detached OpenPGP signature; a containers-signature must contain the signed payload', 'sign with "gpg --sign" (as skopeo standalone-sign does), not "gpg --detach-sign"');
    throw refuse('the OpenPGP message holds no signed payload (no literal data)');
  }
  // containers/image (gpgme) accepts exactly one signature per message; so do we.
  if (signingKeyIds.length !== 1) throw refuse(signingKeyIds.length === 0 ? 'the OpenPGP message is not signed' : `the OpenPGP message carries ${signingKeyIds.length} signatures; a containers-signature has exactly one`);
  const keyId = signingKeyIds[0]!;

  const signer = keys.find((k) => k.getKeys(keyId).length > 0);
  if (signer === undefined)
    throw refuse(`the signature was made by key ${hex(keyId)}, which is not in the given keyring`, 'add the signer\'s public key (gpg --export KEYID) to the keyring, or check that the image was signed by the key you expect');

  let payload: Uint8Array;
  try {
    const result = await openpgp.verify({ message, verificationKeys: [signer], expectSigned: true, format: 'binary' });
    payload = result.data;
    await result.signatures[0]!.verified;
  } catch (e) {
    const reason = (e as Error).message.replace(/^Error verifying signed message: /, '');
    if (/expired/i.test(reason)) throw refuse(`the signature by key ${hex(keyId)} is refused: ${reason}`, 'the key or signature has expired; re-sign with a valid key', e);
    if (/revoked/i.test(reason)) throw refuse(`the signature by key ${hex(keyId)} is refused: the key is revoked (${reason})`, undefined, e);
    throw refuse(`the signature by key ${hex(keyId)} does not verify: ${reason}`, 'the signature or the signed payload was altered, or the signature is corrupt', e);
  }
  // openpgp.js checks the key at signing time; gpg (and so podman) also refuses a key that
  // has expired or been revoked since. A device must not keep trusting a retired key.
  try {
    await signer.getSigningKey(keyId, new Date());
  } catch (e) {
    throw refuse(`the signing key ${hex(keyId)} (${signer.getFingerprint().toUpperCase()}) is no longer valid: ${(e as Error).message}`, 'the key has expired or been revoked; re-sign with a current key, or extend its expiry and re-export it', e);
  }
  return { payload: Buffer.from(payload), signerFingerprint: signer.getFingerprint().toUpperCase() };
}
