import { createInterface } from 'node:readline';
import { access, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { BasaltError, ioError } from '../oci/errors.js';
import { openSource } from '../oci/transports/index.js';
import type { ImageSource } from '../oci/transport.js';
import { writeFileAtomic } from '../oci/fsutil.js';
import { generateKeyPair, loadPrivateKey, passphraseFromEnv } from '../trust/keys.js';
import { defaultPolicyPath, isValidPrefix, loadPolicy, parsePolicy, type Policy } from '../trust/policy.js';
import { defaultRegistriesDDir, loadRegistriesD, type RegistriesD } from '../trust/registries-d.js';
import { checkImagePolicy, evaluateImagePolicy, type PolicyCheckOptions, type PolicyDecision } from '../trust/enforce.js';
import { lookasideUrl, signImage, type Signer, type SignedImage } from '../trust/sign.js';
import { parseReference } from '../oci/reference.js';
import { addRegistryOptions, sourceDateEpoch, transportOptions } from './common.js';
import { printFormatted } from './output.js';
import pkg from '../../package.json' with { type: 'json' };

type Opts = Record<string, unknown>;

async function promptHidden(question: string): Promise<string> {
  if (!process.stdin.isTTY)
    throw new BasaltError('usage', `${question.replace(/: $/, '')} needed but standard input is not a terminal`, { hint: 'set BASALT_PASSWORD (or COSIGN_PASSWORD)' });
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
    if (s.startsWith(question)) process.stderr.write(question);
  };
  try {
    return await new Promise<string>((res) => rl.question(question, res));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

/** The passphrase for reading a private key: a file, the environment, or a prompt. */
export function passphraseSource(file: unknown): () => Promise<string> {
  return async () => {
    if (typeof file === 'string') {
      try {
        return (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
      } catch (e) {
        throw ioError(`reading passphrase file ${file}`, e);
      }
    }
    return passphraseFromEnv() ?? promptHidden('Enter password for private key: ');
  };
}

/** A cosign signer from a private key file. */
export async function cosignSigner(keyPath: string, passphraseFile?: unknown): Promise<Signer> {
  return { kind: 'cosign', privateKey: await loadPrivateKey(keyPath, passphraseSource(passphraseFile)) };
}

export function signTimestamp(): number {
  return sourceDateEpoch() ?? Math.floor(Date.now() / 1000);
}

export const CREATOR = `basalt ${pkg.version}`;

/** Registries.d from --registries.d, else the directory podman reads. */
export async function registriesDFrom(o: Opts): Promise<RegistriesD> {
  const dir = o['registries.d'];
  return loadRegistriesD(typeof dir === 'string' ? dir : await defaultRegistriesDDir());
}

/**
 * The policy for image copy / install: --policy, else podman's default file; none with
 * --insecure-policy. A missing default file is refused, as skopeo does.
 */
export async function policyCheckFrom(o: Opts, side: '' | 'src'): Promise<PolicyCheckOptions | undefined> {
  if (o.insecurePolicy) {
    if (o.enforceContainerSigpolicy) throw new BasaltError('usage', '--insecure-policy and --enforce-container-sigpolicy contradict each other');
    return undefined;
  }
  const file = typeof o.policy === 'string' ? o.policy : await defaultPolicyPath();
  const policy = await loadPolicy(file).catch((e: unknown) => {
    if (e instanceof BasaltError && e.kind === 'not-found' && typeof o.policy !== 'string')
      throw new BasaltError('policy', `no signature policy at ${file}`, { hint: 'create one (basalt policy init), pass --policy FILE, or --insecure-policy to accept any image', cause: e });
    throw e;
  });
  return {
    policy,
    registriesD: await registriesDFrom(o),
    transport: transportOptions(o, side),
    ...(o.enforceContainerSigpolicy ? { enforceContainerSigpolicy: true } : {}),
  };
}

/** The policy check install and update run on the source before importing anything. */
export async function sourceCheckFrom(o: Opts): Promise<((source: ImageSource, imageName: string) => Promise<void>) | undefined> {
  const check = await policyCheckFrom(o, '');
  if (check === undefined) return undefined;
  return async (source, imageName) => {
    await checkImagePolicy(source, imageName, check);
  };
}

/** Adds the policy options image copy and install share. */
export function addPolicyOptions(cmd: Command): Command {
  return cmd
    .option('--policy <file>', 'signature policy (default: ~/.config/containers/policy.json, else /etc/containers/policy.json)')
    .option('--insecure-policy', 'accept any image without consulting a policy (skopeo\'s flag)')
    .option('--registries.d <dir>', 'where signatures live (default: ~/.config/containers/registries.d, else /etc/containers/registries.d)')
    .option('--enforce-container-sigpolicy', 'refuse when the policy would accept an unsigned image (bootc\'s flag)');
}

function describeDecision(d: PolicyDecision): string {
  const accepted = d.requirements.every((r) => r.accepted);
  const lines = [`${accepted ? 'Accepted' : 'Refused'}: ${d.image} (${d.manifestDigest}) under ${d.policyFile} ${d.scope}`];
  for (const r of d.requirements) {
    lines.push(`  ${r.type}: ${r.accepted ? 'accepted' : 'refused'}`);
    for (const s of r.signatures) lines.push(`    ${s.format} signature ${s.id} for ${s.dockerReference}`);
    for (const why of r.reasons) lines.push(`    ${r.accepted ? 'ignored' : 'refused'}: ${why}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The identity rule `verify --key/--gpg-keyring` uses: the image's own name, or --signed-identity. */
function identityRule(o: Opts): Record<string, string> | undefined {
  const given = o.signedIdentity;
  if (typeof given !== 'string') return undefined;
  const ref = parseReference(given);
  return ref.tag !== undefined || ref.digest !== undefined ? { type: 'exactReference', dockerReference: given } : { type: 'exactRepository', dockerRepository: given };
}

async function verifyPolicy(o: Opts): Promise<{ policy: Policy; registriesD: RegistriesD }> {
  const modes = ['key', 'gpgKeyring', 'policy'].filter((k) => o[k] !== undefined);
  if (modes.length !== 1) throw new BasaltError('usage', 'give exactly one of --key, --gpg-keyring or --policy');
  const registriesD = await registriesDFrom(o);
  if (o.policy) return { policy: await loadPolicy(o.policy as string), registriesD };
  const signedIdentity = identityRule(o);
  const requirement = o.key
    ? { type: 'sigstoreSigned', keyPaths: (o.key as string[]).map((k) => resolve(k)) }
    : { type: 'signedBy', keyType: 'GPGKeys', keyPaths: (o.gpgKeyring as string[]).map((k) => resolve(k)) };
  const doc = { default: [{ ...requirement, ...(signedIdentity ? { signedIdentity } : {}) }] };
  return { policy: parsePolicy(JSON.stringify(doc), o.key ? '--key' : '--gpg-keyring'), registriesD };
}

function appendList(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function keygenCommand(): Command {
  return new Command('keygen')
    .description('generate an ECDSA P-256 key pair in cosign\'s formats (cosign.key encrypted, cosign.pub)')
    .option('--output-key-prefix <prefix>', 'write <prefix>.key and <prefix>.pub', 'cosign')
    .option('--force', 'replace existing key files')
    .action(async (o: Opts) => {
      let passphrase = passphraseFromEnv();
      if (passphrase === undefined) {
        passphrase = await promptHidden('Enter password for private key: ');
        if ((await promptHidden('Enter password for private key again: ')) !== passphrase) throw new BasaltError('usage', 'the passwords do not match');
      }
      const pair = await generateKeyPair(o.outputKeyPrefix as string, passphrase, { force: Boolean(o.force) });
      process.stderr.write(`Private key written to ${pair.privateKeyPath}\nPublic key written to ${pair.publicKeyPath}\n`);
    });
}

export function signCommand(): Command {
  const cmd = new Command('sign')
    .description('sign the manifest IMAGE points at: cosign signature (--key) or simple signature to a lookaside (--gpg-key)')
    .argument('<image>')
    .option('--key <file>', 'cosign private key (cosign.key); passphrase from BASALT_PASSWORD, COSIGN_PASSWORD or a prompt')
    .option('--sign-passphrase-file <file>', 'read the private key\'s passphrase from <file>')
    .option('--gpg-key <id>', 'OpenPGP key (fingerprint or ID in the GnuPG home) for a simple signature')
    .option('--gpg-homedir <dir>', 'GnuPG home for --gpg-key (default: $GNUPGHOME or ~/.gnupg)')
    .option('--lookaside <dir|url>', 'where --gpg-key writes the signature (default: registries.d lookaside-staging/lookaside)')
    .option('--identity <reference>', 'the docker reference the signature claims (default: the image\'s registry name)')
    .option('--registries.d <dir>', 'registries.d directory for the lookaside location')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('--registries-conf <file>', 'use this registries.conf instead of the system one');
  addRegistryOptions(cmd, '');
  cmd.action(async (image: string, o: Opts) => {
    if (Boolean(o.key) === Boolean(o.gpgKey)) throw new BasaltError('usage', 'give exactly one of --key or --gpg-key');
    const signer: Signer = o.key
      ? await cosignSigner(o.key as string, o.signPassphraseFile)
      : { kind: 'gpg', signer: { keyId: o.gpgKey as string, ...(o.gpgHomedir ? { gnupgHome: o.gpgHomedir as string } : {}), ...(passphraseFromEnv() ? { passphrase: passphraseFromEnv() as string } : {}) } };
    const result: SignedImage = await signImage(image, signer, {
      transport: transportOptions(o, ''),
      creator: CREATOR,
      timestamp: signTimestamp(),
      ...(o.identity ? { identity: o.identity as string } : {}),
      ...(o.lookaside ? { lookaside: o.lookaside as string } : { registriesD: await registriesDFrom(o) }),
    });
    await printFormatted(result, o.format as string, () => `Signed ${result.image} (${result.manifestDigest}) as ${result.dockerReference}: ${result.location}\n`);
  });
  return cmd;
}

export function verifyCommand(): Command {
  const cmd = new Command('verify')
    .description('check IMAGE\'s signatures against a key, a keyring or a containers-policy.json; exit 8 when refused')
    .argument('<image>')
    .option('--key <file>', 'cosign public key (repeatable: any one may have signed)', appendList)
    .option('--gpg-keyring <file>', 'OpenPGP keyring for simple signatures (repeatable)', appendList)
    .option('--policy <file>', 'a containers-policy.json')
    .option('--registries.d <dir>', 'where signatures live (default: ~/.config/containers/registries.d, else /etc/containers/registries.d)')
    .option('--lookaside <dir|url>', 'read simple signatures from here instead of registries.d')
    .option('--signed-identity <reference>', 'with --key/--gpg-keyring: the reference (REPO:TAG) or repository signatures must claim (default: the image\'s own name)')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('--registries-conf <file>', 'use this registries.conf instead of the system one');
  addRegistryOptions(cmd, '');
  cmd.action(async (image: string, o: Opts) => {
    const { policy, registriesD } = await verifyPolicy(o);
    const transport = transportOptions(o, '');
    const source = await openSource(image, transport);
    let decision: PolicyDecision;
    try {
      decision = await evaluateImagePolicy(source, image, {
        policy,
        registriesD,
        transport,
        alwaysReadAttachments: Boolean(o.key),
        ...(o.lookaside ? { lookaside: lookasideUrl(o.lookaside as string) } : {}),
      });
    } finally {
      await source.close();
    }
    const accepted = decision.requirements.every((r) => r.accepted);
    await printFormatted({ ...decision, accepted }, o.format as string, () => describeDecision(decision));
    if (!accepted) {
      const reasons = decision.requirements.flatMap((r) => r.reasons).join('; ');
      throw new BasaltError('policy', `${image} is not accepted: ${reasons}`, { hint: 'check the key, and that the image was signed under the name you verify it by' });
    }
  });
  return cmd;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

export function policyCommand(): Command {
  const policy = new Command('policy').description('write containers-policy.json and registries.d entries that basalt and podman both enforce');
  const init = new Command('init')
    .description('trust KEY for a registry scope: default reject, signatures required, sigstore attachments enabled')
    .option('--key <file>', 'cosign public key to trust (sigstoreSigned)')
    .option('--gpg-keyring <file>', 'OpenPGP keyring to trust (signedBy)')
    .option('--scope <registry/repo>', 'the registry, namespace or repository the key is trusted for (default: every registry)')
    .option('--lookaside <url>', 'with --gpg-keyring: where simple signatures are read (file:// or https://)')
    .option('--policy-file <file>', 'where to write the policy', '/etc/containers/policy.json')
    .option('--registries.d <dir>', 'where to write the registries.d entry', '/etc/containers/registries.d')
    .option('--force', 'replace existing files');
  init.action(async (o: Opts) => {
    if (Boolean(o.key) === Boolean(o.gpgKeyring)) throw new BasaltError('usage', 'give exactly one of --key or --gpg-keyring');
    const scope = typeof o.scope === 'string' ? o.scope : '';
    if (scope !== '' && !isValidPrefix(scope)) throw new BasaltError('usage', `--scope "${scope}" must be a registry HOST[:PORT] or HOST/REPOSITORY without tag`);
    const requirement = o.key
      ? { type: 'sigstoreSigned', keyPath: resolve(o.key as string), signedIdentity: { type: 'matchRepoDigestOrExact' } }
      : { type: 'signedBy', keyType: 'GPGKeys', keyPath: resolve(o.gpgKeyring as string), signedIdentity: { type: 'matchRepoDigestOrExact' } };
    const doc = { default: [{ type: 'reject' }], transports: { docker: { [scope]: [requirement] } } };
    const policyText = `${JSON.stringify(doc, null, 4)}\n`;
    parsePolicy(policyText, 'generated policy'); // the file written must be one basalt itself accepts
    const settings: Record<string, unknown> = o.key ? { 'use-sigstore-attachments': true } : {};
    if (o.lookaside) settings.lookaside = lookasideUrl(o.lookaside as string);
    if (!o.key && !o.lookaside) throw new BasaltError('usage', '--gpg-keyring needs --lookaside: simple signatures are read from a lookaside');
    const yamlText = scope === '' ? `default-docker:\n${yamlMap(settings, '  ')}` : `docker:\n  ${JSON.stringify(scope)}:\n${yamlMap(settings, '    ')}`;
    const dir = o['registries.d'] as string;
    const yamlFile = join(dir, `basalt-${scope === '' ? 'default' : scope.replace(/[^A-Za-z0-9._-]+/g, '_')}.yaml`);
    const policyFile = o.policyFile as string;
    if (!o.force)
      for (const f of [policyFile, yamlFile]) if (await exists(f)) throw new BasaltError('usage', `${f} already exists`, { hint: 'pass --force to replace it' });
    await writeFileAtomic(yamlFile, yamlText);
    await writeFileAtomic(policyFile, policyText);
    process.stderr.write(`Wrote ${policyFile} and ${yamlFile}\n`);
  });
  policy.addCommand(init);
  return policy;
}

function yamlMap(settings: Record<string, unknown>, indent: string): string {
  return Object.entries(settings)
    .map(([k, v]) => `${indent}${k}: ${typeof v === 'string' ? JSON.stringify(v) : String(v)}\n`)
    .join('');
}
