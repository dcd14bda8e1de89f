import { readFile, stat } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { BasaltError, isBasaltError } from '../oci/errors.js';
import { readAci, readHead, sniffAci } from '../appc/archive.js';
import { buildAci, validateLayout } from '../appc/build.js';
import { discover, parseAppString } from '../appc/discovery.js';
import { dockerToAci } from '../appc/docker2aci.js';
import { exportAciToOci } from '../appc/export-oci.js';
import { fetchAci, parseInsecureOptions } from '../appc/fetch.js';
import { DEFAULT_KEYSTORE, trustKey, type KeystoreDirs } from '../appc/keystore.js';
import { parseImageManifest, serializeManifest, type ValidationMode } from '../appc/manifest.js';
import { patchAci, type ManifestPatch } from '../appc/patch.js';
import { serveAcis } from '../appc/serve.js';
import { signAci } from '../appc/signature.js';
import { DEFAULT_ACI_STORE, findInStore, listStore } from '../appc/store.js';
import { addRegistryOptions, sourceDateEpoch, transportOptions } from './common.js';
import { printFormatted, printJson, reportError } from './output.js';

type Opts = Record<string, unknown>;

function keystoreDirs(o: Opts): KeystoreDirs {
  return {
    local: (o.trustDir as string | undefined) ?? process.env.BASALT_ACI_TRUST_DIR ?? DEFAULT_KEYSTORE.local,
    system: (o.systemTrustDir as string | undefined) ?? process.env.BASALT_ACI_SYSTEM_TRUST_DIR ?? DEFAULT_KEYSTORE.system,
  };
}

function storeRoot(o: Opts): string {
  return (o.store as string | undefined) ?? process.env.BASALT_ACI_STORE ?? DEFAULT_ACI_STORE;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new BasaltError('usage', `--port ${value} is not a port number`);
  return n;
}

function withTrustOptions(cmd: Command): Command {
  return cmd
    .option('--trust-dir <dir>', `where trusted keys are written and read ($BASALT_ACI_TRUST_DIR, default ${DEFAULT_KEYSTORE.local})`)
    .option('--system-trust-dir <dir>', `vendor keys, masked by empty files in --trust-dir ($BASALT_ACI_SYSTEM_TRUST_DIR, default ${DEFAULT_KEYSTORE.system})`);
}

const VALIDATE_TYPES = ['appimage', 'layout', 'manifest'] as const;

/** Validates one file; returns a line for the user, throws BasaltError when it is invalid. */
async function validateOne(path: string, type: string | undefined, mode: ValidationMode): Promise<string> {
  const st = await stat(path).catch(() => {
    throw new BasaltError('not-found', `${path}: no such file or directory`);
  });
  let kind = type;
  if (st.isDirectory()) {
    if (kind && kind !== 'layout') throw new BasaltError('usage', `${path} is a directory (wrong --type?)`);
    kind = 'layout';
  } else if (!kind) {
    const sniffed = sniffAci(await readHead(path));
    kind = sniffed === 'text' ? 'manifest' : sniffed === 'unknown' ? undefined : 'appimage';
    if (!kind) throw new BasaltError('usage', `${path}: unable to detect the file type (try --type)`);
  }
  if (kind === 'layout') {
    await validateLayout(path, mode);
    return `${path}: valid image layout`;
  }
  if (kind === 'appimage') {
    const info = await readAci(path, { mode });
    return `${path}: valid app container image ${info.manifest.name} (${info.imageId.slice(0, 19)})`;
  }
  const bytes = await readFile(path);
  const m = parseImageManifest(bytes, path, mode);
  return `${path}: valid ImageManifest ${m.name}`;
}

export function aciCommand(): Command {
  const aci = new Command('aci').description('App Container images (appc spec v0.8.11): build, validate, sign, discover, fetch, serve, convert');

  aci.addCommand(
    new Command('build')
      .description('build an ACI from an image layout directory (manifest + rootfs/); byte-identical for the same input and SOURCE_DATE_EPOCH')
      .argument('<dir>', 'image layout directory')
      .argument('<out>', 'ACI file to write')
      .option('--overwrite', 'replace OUT if it exists')
      .option('--no-compression', 'write a plain tar instead of gzip')
      .option('--owner-root', 'record every file as owned by 0:0')
      .action(async (dir: string, out: string, o: Opts) => {
        const m = await buildAci(dir, out, {
          overwrite: o.overwrite === true,
          compression: o.compression !== false,
          ownerRoot: o.ownerRoot === true,
          ...(sourceDateEpoch() !== undefined ? { sourceDateEpoch: sourceDateEpoch() as number } : {}),
        });
        process.stderr.write(`built ${out} (${m.name})\n`);
      }),
  );

  aci.addCommand(
    new Command('validate')
      .description('validate ACIs, image layouts and image manifests (type detected unless --type)')
      .argument('<files...>')
      .addOption(new Option('--type <type>', 'what the files are').choices([...VALIDATE_TYPES]))
      .addOption(new Option('--mode <mode>', 'strict: the spec\'s rules; actool: exactly what actool 0.8.11 accepts').choices(['strict', 'actool']).default('strict'))
      .option('-q, --quiet', 'print nothing for valid files')
      .action(async (files: string[], o: Opts) => {
        let failure: BasaltError | undefined;
        for (const f of files) {
          try {
            const line = await validateOne(f, o.type as string | undefined, o.mode as ValidationMode);
            if (!o.quiet) process.stdout.write(`${line}\n`);
          } catch (e) {
            if (!isBasaltError(e) || e.kind === 'usage') throw e;
            reportError(e, false);
            failure ??= e;
          }
        }
        if (failure) throw new BasaltError(failure.kind, `${files.length > 1 ? 'some files are' : 'the file is'} not valid (see above)`);
      }),
  );

  aci.addCommand(
    new Command('cat-manifest')
      .description('print the manifest of an ACI')
      .argument('<aci>')
      .option('--pretty-print', 'indent the JSON')
      .action(async (file: string, o: Opts) => {
        const info = await readAci(file, { mode: 'actool' });
        const out = o.prettyPrint ? serializeManifest(info.manifest, true).toString('utf8') : info.manifestBytes.toString('utf8').trimEnd();
        process.stdout.write(`${out}\n`);
      }),
  );

  aci.addCommand(
    new Command('patch-manifest')
      .description('copy an ACI with its manifest patched (actool\'s flags)')
      .argument('<input>')
      .argument('[output]')
      .option('--manifest <file>', 'replace the whole manifest with this file')
      .option('--name <name>', 'replace the name')
      .option('--exec <cmdline>', 'replace the command line (split on spaces)')
      .option('--user <uid>', 'replace the user')
      .option('--group <gid>', 'replace the group')
      .option('--capability <caps>', 'capabilities retain set, comma-separated')
      .option('--revoke-capability <caps>', 'capabilities remove set, comma-separated')
      .option('--mounts <list>', 'NAME,path=/p[,readOnly=true][:...]')
      .option('--ports <list>', 'NAME,protocol=tcp,port=8080[,count=N][,socketActivated=true][:...]')
      .option('--supplementary-groups <gids>', 'comma-separated GIDs')
      .option('--isolators <list>', 'resource/cpu,request=50m,limit=100m[:...]; os/linux/no-new-privileges,true')
      .option('--seccomp-mode <mode>', 'remove|retain[,errno=EPERM]')
      .option('--seccomp-set <syscalls>', 'comma-separated syscalls for the seccomp isolator')
      .option('--replace', 'patch INPUT in place')
      .option('--overwrite', 'replace OUTPUT if it exists')
      .option('--no-compression', 'write a plain tar instead of gzip')
      .action(async (input: string, output: string | undefined, o: Opts) => {
        const patch: ManifestPatch = {};
        for (const k of ['name', 'exec', 'user', 'group', 'capability', 'revokeCapability', 'mounts', 'ports', 'supplementaryGroups', 'isolators', 'seccompMode', 'seccompSet'] as const)
          if (typeof o[k] === 'string') patch[k] = o[k] as string;
        const m = await patchAci(input, output, patch, {
          ...(typeof o.manifest === 'string' ? { manifestFile: o.manifest } : {}),
          overwrite: o.overwrite === true, replace: o.replace === true, compression: o.compression !== false,
        });
        process.stderr.write(`patched ${o.replace ? input : output} (${m.name})\n`);
      }),
  );

  aci.addCommand(
    new Command('discover')
      .description('find the download URLs of an image by appc meta discovery')
      .argument('<app>', 'NAME[:VERSION][,LABEL=VALUE...]')
      .option('--insecure', 'allow plain HTTP and any TLS certificate')
      .option('--json', 'print JSON')
      .option('--port <port>', 'connect to this port', port)
      .action(async (app: string, o: Opts) => {
        const result = await discover(parseAppString(app), { insecure: o.insecure === true, ...(o.port ? { port: o.port as number } : {}) });
        // actool discover's output, text and JSON alike.
        if (o.json) return printJson({ ACIEndpoints: result.endpoints.map((e) => ({ ACI: e.aci, ASC: e.asc })), PublicKeys: result.publicKeys });
        for (const e of result.endpoints) process.stdout.write(`ACI: ${e.aci}, ASC: ${e.asc}\n`);
        if (result.publicKeys.length > 0) process.stdout.write(`PublicKeys: ${result.publicKeys.join(',')}\n`);
      }),
  );

  aci.addCommand(
    addRegistryOptions(
      new Command('from-docker')
        .description('convert a Docker/OCI image to ACIs (docker2aci): a docker-archive file, docker://REF or any basalt transport')
        .argument('<source>')
        .option('--nosquash', 'one ACI per layer, linked by dependencies')
        .option('--no-compression', 'write plain tars instead of gzip')
        .option('-o, --output-dir <dir>', 'where to write the ACIs', '.')
        .option('--image <name:tag>', 'the Docker name to derive the ACI name from, when the source has none'),
      '',
    ).action(async (source: string, o: Opts) => {
      const r = await dockerToAci(source, {
        outDir: o.outputDir as string, noSquash: o.nosquash === true, compression: o.compression !== false,
        ...(typeof o.image === 'string' ? { imageName: o.image } : {}), transport: transportOptions(o, ''),
      });
      for (const f of r.files) process.stdout.write(`${f}\n`);
    }),
  );

  aci.addCommand(
    new Command('sign')
      .description('write ACI.asc, an armored detached OpenPGP signature of the ACI')
      .argument('<aci>')
      .requiredOption('--key <file>', 'armored or binary OpenPGP private key')
      .option('--passphrase-file <file>', 'the key\'s passphrase')
      .option('--output <file>', 'where to write the signature (default ACI.asc)')
      .action(async (file: string, o: Opts) => {
        const passphrase = typeof o.passphraseFile === 'string' ? (await readFile(o.passphraseFile, 'utf8')).replace(/\r?\n$/, '') : undefined;
        const r = await signAci(file, o.key as string, { ...(passphrase !== undefined ? { passphrase } : {}), ...(typeof o.output === 'string' ? { out: o.output } : {}) });
        process.stderr.write(`signed ${file} with key ${r.fingerprint}\n`);
      }),
  );

  aci.addCommand(
    withTrustOptions(
      new Command('trust')
        .description('trust a public key for images under a name prefix (or all names: --root), in rkt\'s trustedkeys layout')
        .argument('<keyfile>')
        .option('--prefix <prefix>', 'trust the key for names starting with this AC Identifier')
        .option('--root', 'trust the key for every name'),
    ).action(async (keyFile: string, o: Opts) => {
      const t = await trustKey(keystoreDirs(o), keyFile, { ...(typeof o.prefix === 'string' ? { prefix: o.prefix } : {}), root: o.root === true });
      process.stdout.write(`trusted key ${t.fingerprint} for ${t.scope === 'root' ? 'every name' : `prefix "${t.scope}"`} (${t.path})\n`);
    }),
  );

  aci.addCommand(
    withTrustOptions(
      new Command('fetch')
        .description('fetch an ACI by name (discovery), URL or file; its signature is checked against the trusted keys before it is stored')
        .argument('<image>', 'NAME[:VERSION][,LABEL=VALUE...], https://.../x.aci or a file')
        .option('--insecure-options <list>', 'none, image (no signature check), tls, http, all', 'none')
        .option('--port <port>', 'discovery port', port)
        .option('--store <dir>', `ACI store ($BASALT_ACI_STORE, default ${DEFAULT_ACI_STORE})`)
        .option('--json', 'print JSON'),
    ).action(async (target: string, o: Opts) => {
      const r = await fetchAci(target, { insecure: parseInsecureOptions(o.insecureOptions as string), keystore: keystoreDirs(o), storeRoot: storeRoot(o), ...(o.port ? { port: o.port as number } : {}) });
      await printFormatted(r, o.json ? 'json' : 'text', () => `${r.stored.imageId}\n`);
    }),
  );

  aci.addCommand(
    new Command('images')
      .description('list the ACI store')
      .option('--store <dir>', `ACI store ($BASALT_ACI_STORE, default ${DEFAULT_ACI_STORE})`)
      .option('--json', 'print JSON')
      .action(async (o: Opts) => {
        const all = await listStore(storeRoot(o));
        await printFormatted(all, o.json ? 'json' : 'text', () => all.map((a) => `${a.imageId.slice(0, 19)}  ${a.name}  ${Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(',')}\n`).join(''));
      }),
  );

  aci.addCommand(
    new Command('serve')
      .description('serve a directory of ACIs, signatures and discovery pages over plain HTTP (intranets)')
      .argument('<dir>')
      .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8080')
      .action(async (dir: string, o: Opts) => {
        const m = /^(.*):(\d+)$/.exec(o.listen as string);
        if (!m) throw new BasaltError('usage', `--listen ${String(o.listen)} is not HOST:PORT`);
        const s = await serveAcis(dir, { host: (m[1] as string).replace(/^\[|\]$/g, ''), port: Number(m[2]) });
        process.stdout.write(`serving ${s.images} ACI(s) from ${dir} on ${s.url}\n`);
        await new Promise<void>((resolve) => {
          const stop = (): void => void s.close().then(resolve);
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        });
      }),
  );

  aci.addCommand(
    addRegistryOptions(
      new Command('export')
        .description('convert an ACI (file, or image ID/name in the ACI store) into an OCI image in any basalt transport')
        .argument('<aci>')
        .argument('<destination>', 'oci:DIR:TAG, docker-archive:FILE:NAME, containers-storage:NAME, docker://..., or a store name')
        .addOption(new Option('--to <format>', 'target format').choices(['oci']).default('oci'))
        .option('--store <dir>', `ACI store ($BASALT_ACI_STORE, default ${DEFAULT_ACI_STORE})`),
      'dest-',
    ).action(async (input: string, destination: string, o: Opts) => {
      let file = input;
      if (!(await stat(input).then((s) => s.isFile(), () => false))) {
        const app = input.startsWith('sha512-') ? { name: input, labels: {} } : parseAppString(input);
        const hit = await findInStore(storeRoot(o), app.name, app.labels);
        if (!hit) throw new BasaltError('not-found', `${input}: no such file, and no such image in the ACI store ${storeRoot(o)}`, { hint: 'fetch it first with basalt aci fetch' });
        file = hit.aci;
      }
      const sde = sourceDateEpoch();
      const r = await exportAciToOci(file, destination, { transport: transportOptions(o, 'dest'), ...(sde !== undefined ? { sourceDateEpoch: sde } : {}) });
      process.stdout.write(`${r.digest}\n`);
    }),
  );
  return aci;
}
