
import { writeFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { BasaltError } from '../oci/errors.js';
import { openDestination, openSource } from '../oci/transports/index.js';
import { copyImage, type ManifestFormat } from '../oci/copy.js';
import { readImage, writeImage, type Image } from '../oci/image.js';
import { inspectImage, rawConfig, rawManifest } from '../oci/inspect.js';
import { mutateConfig, type ConfigChanges } from '../oci/mutate.js';
import { appendPath, exportRootfs, flattenImage, packImage, unpackImage } from '../oci/filesystem.js';
import { Scratch } from '../oci/scratch.js';
import { listTags, deleteImage, listImages, removeImage } from '../oci/catalog.js';
import { syncImages, type SyncSourceKind, type SyncDestKind } from '../oci/sync.js';
import type { Compression } from '../oci/media-types.js';
import type { TransportOptions } from '../oci/transport.js';
import type { ManifestBlob } from '../oci/manifest.js';
import { addPlatformOptions, addRegistryOptions, collect, commandLine, keyValue, platformOption, sourceDateEpoch, transportOptions } from './common.js';
import { CopyProgress, type ProgressMode } from './progress.js';
import { printJson, warn } from './output.js';
import { loginCommand, logoutCommand } from './login.js';
import { addPolicyOptions, cosignSigner, CREATOR, policyCheckFrom, registriesDFrom, signTimestamp } from './trust.js';
import { checkImagePolicy } from '../trust/enforce.js';
import { signImage } from '../trust/sign.js';
import { imageIdentity } from '../trust/image-identity.js';
import { appendCosignSignatures, signatureImageFor, signaturesOf } from '../trust/cosign.js';
import { digestOf } from '../oci/digest.js';
import { passphraseFromEnv } from '../trust/keys.js';
import { DirDestination } from '../oci/transports/dir.js';
import { readSimpleSignatures, SignatureCarryingDestination } from '../trust/carry.js';
import { createSimpleSignature } from '../trust/pgp.js';
import { createPayload, SIMPLE_SIGNING_TYPE } from '../trust/payload.js';

type Opts = Record<string, unknown>;

function verboseLog(o: Opts): ((m: string) => void) | undefined {
  return o.quiet ? undefined : (m: string) => warn(m);
}

async function withImage<T>(name: string, opts: TransportOptions, o: Opts, fn: (image: Image) => Promise<T>): Promise<T> {
  const source = await openSource(name, opts);
  try {
    const platform = platformOption(o);
    return await fn(await readImage(source, platform ? { platform } : {}));
  } finally {
    await source.close();
  }
}

/** Writes a new image to `dest` and prints its digest. */
async function storeResult(image: Image, dest: string, o: Opts): Promise<void> {
  const destination = await openDestination(dest, transportOptions(o, 'dest'));
  const manifest = await writeImage(image, destination);
  process.stdout.write(`${manifest.digest}\n`);
}

export function imageCommand(): Command {
  const image = new Command('image').description('copy, inspect and change OCI images in registries, layouts, archives and the local store');
  image.addHelpText(
    'after',
    `
Image names use skopeo's transports:
  docker://HOST[:PORT]/REPO[:TAG|@DIGEST]   a registry (OCI distribution API)
  oci:DIR[:REF]                              an OCI image layout directory
  oci-archive:FILE[:REF]                     a tar of an OCI layout
  docker-archive:FILE[:REF]                  what podman save / docker save write
  containers-storage:REF                     podman's local images (through podman)
  dir:PATH                                   skopeo's directory format (one image, signatures)
  NAME (no transport) or store:NAME          basalt's local store ($BASALT_STORE,
                                             /var/lib/basalt/store as root)`,
  );

  const copy = new Command('copy')
    .description('copy an image between any two transports, verifying every digest')
    .argument('<source>')
    .argument('<destination>')
    .option('-a, --all', 'copy every image of a multi-platform index')
    .addOption(new Option('-f, --format <format>', 'manifest format to write').choices(['oci', 'v2s2']))
    .addOption(new Option('--dest-compress <compression>', 'compress layers with this (re-compressing where needed)').choices(['gzip', 'zstd', 'none']))
    .addOption(new Option('--dest-compress-format <compression>', 'skopeo\'s name for --dest-compress').choices(['gzip', 'zstd', 'none']))
    .option('--preserve-digests', 'fail instead of changing any digest')
    .addOption(new Option('--progress <mode>', 'progress output').choices(['auto', 'tty', 'json', 'none']).default('auto'))
    .option('-q, --quiet', 'print nothing but errors')
    .option('--digestfile <file>', 'write the digest of the written manifest to <file>')
    .option('--dest-chunk-size <size>', 'upload blobs to a registry in resumable chunks of <size> (e.g. 16M) instead of one request each')
    .option('--registries-conf <file>', 'use this registries.conf instead of the system one')
    .option('--sign-by-sigstore-private-key <file>', 'sign the copied image with this cosign private key')
    .option('--sign-passphrase-file <file>', 'passphrase of the signing key (default: BASALT_PASSWORD, COSIGN_PASSWORD or a prompt)')
    .option('--sign-by <gpg-id>', 'write a simple signature with this OpenPGP key to the destination\'s lookaside (into the directory for dir:)')
    .option('--sign-identity <reference>', 'the docker reference the signature claims (default: the destination\'s name)')
    .option('--remove-signatures', 'do not copy the source\'s signatures (cosign, and simple signatures in dir: or lookaside)');
  addPolicyOptions(copy);
  addPlatformOptions(copy);
  addRegistryOptions(addRegistryOptions(addRegistryOptions(copy, ''), 'src-'), 'dest-');
  copy.action(async (src: string, dst: string, o: Opts) => {
    const log = verboseLog(o);
    const policyCheck = await policyCheckFrom(o, 'src');
    // Keys are opened (and passphrases asked for) before anything is copied.
    const signer = o.signBySigstorePrivateKey ? await cosignSigner(o.signBySigstorePrivateKey as string, o.signPassphraseFile) : undefined;
    if (signer && o.signBy) throw new BasaltError('usage', 'give one of --sign-by-sigstore-private-key or --sign-by');
    if ((signer || o.signBy) && !o.signIdentity && imageIdentity(dst).dockerReference === undefined)
      throw new BasaltError('usage', `${dst} has no registry name for the signature to claim`, { hint: 'pass --sign-identity HOST/REPO:TAG, the name the image will be pulled by' });
    const source = await openSource(src, transportOptions(o, 'src', log));
    try {
      // Signatures travel with the image, as skopeo copies them; checked before anything is written.
      const sourceDigest = digestOf((await source.getManifest()).bytes);
      const signatures = o.removeSignatures ? [] : await signaturesOf(src, sourceDigest, source.location, transportOptions(o, 'src', log));
      if (signatures.length > 0) {
        if (o.format || o.destCompress || o.destCompressFormat)
          throw new BasaltError('usage', `${src} is signed, and --format/--dest-compress would change its digest and void the signatures`, { hint: 'pass --remove-signatures (and sign the result), or copy without conversion' });
        signatureImageFor(dst, sourceDigest); // throws for destinations that cannot hold signatures
      }
      const gpg = typeof o.signBy === 'string' ? { kind: 'gpg' as const, signer: { keyId: o.signBy, ...(passphraseFromEnv() ? { passphrase: passphraseFromEnv() as string } : {}) } } : undefined;
      // Simple signatures travel too (dir: signature-N, registry lookaside); --sign-by into a dir: adds one there.
      const registriesD = await registriesDFrom(o);
      const inner = await openDestination(dst, transportOptions(o, 'dest', log));
      const signIntoDir = gpg && inner instanceof DirDestination ? gpg : undefined;
      if (signer && inner instanceof DirDestination) throw new BasaltError('usage', `${dst} holds simple signatures only, not cosign signatures`, { hint: 'sign with --sign-by GPG-KEY, or copy to a registry or an oci: layout' });
      const destination = new SignatureCarryingDestination(inner, registriesD, signIntoDir ? (digest) => createSimpleSignature(createPayload(SIMPLE_SIGNING_TYPE, o.signIdentity as string, digest, { creator: CREATOR, timestamp: signTimestamp() }), signIntoDir.signer) : undefined);
      const progress = new CopyProgress(o.quiet ? 'none' : (o.progress as ProgressMode));
      const platform = platformOption(o);
      const compress = (o.destCompress ?? o.destCompressFormat) as Compression | undefined;
      const result = await copyImage(source, destination, {
        all: Boolean(o.all),
        ...(platform ? { platform } : {}),
        ...(o.format ? { format: o.format as ManifestFormat } : {}),
        ...(compress ? { destCompress: compress } : {}),
        onEvent: progress.onEvent,
        beforeWrite: async (top) => {
          if (o.preserveDigests && (o.format || compress)) throw new BasaltError('usage', '--preserve-digests cannot be combined with --format or --dest-compress, which change digests');
          if (policyCheck) await checkImagePolicy(source, src, policyCheck);
          const simple = o.removeSignatures ? [] : await readSimpleSignatures(src, source, top.digest, registriesD);
          if (simple.length > 0 && (o.format || compress))
            throw new BasaltError('usage', `${src} has ${simple.length} simple signature(s), and --format/--dest-compress would change its digest and void them`, { hint: 'pass --remove-signatures (and sign the result), or copy without conversion' });
          destination.carry(simple, top.digest, o.removeSignatures || !o.all ? undefined : (digest) => readSimpleSignatures(src, source, digest, registriesD));
        },
      });
      progress.finish();
      if (o.digestfile) await writeFile(o.digestfile as string, result.digest);
      if (signatures.length > 0) {
        if (result.digest === sourceDigest) await appendCosignSignatures(signatureImageFor(dst, result.digest), signatures, transportOptions(o, 'dest', log));
        else if (!o.quiet) warn(`the ${signatures.length} signature(s) of ${src} sign ${sourceDigest}, not the copied ${result.digest} (one platform of an index): not copied`);
      }
      if (destination.count > 0 && !o.quiet) process.stderr.write(`Copied ${destination.count} simple signature(s)${destination.written.length ? ` to ${destination.written.join(', ')}` : ''}\n`);
      const sign = signer ?? (signIntoDir ? undefined : gpg);
      if (signIntoDir && !o.quiet) process.stderr.write(`Signed ${result.digest} as ${o.signIdentity as string} in ${dst}\n`);
      if (sign) {
        const signed = await signImage(dst, sign, {
          transport: transportOptions(o, 'dest', log),
          creator: CREATOR,
          timestamp: signTimestamp(),
          registriesD: await registriesDFrom(o),
          ...(o.signIdentity ? { identity: o.signIdentity as string } : {}),
        });
        if (!o.quiet) process.stderr.write(`Signed ${signed.manifestDigest} as ${signed.dockerReference}: ${signed.location}\n`);
      }
    } finally {
      await source.close();
    }
  });
  image.addCommand(copy);

  const sync = new Command('sync')
    .description('mirror repositories or a YAML list of images to a registry or a directory (skopeo sync)')
    .argument('<source>', 'a registry repository (docker), a directory of dir: images (dir) or of OCI layouts (oci), or a YAML file (yaml)')
    .argument('<destination>', 'a registry and path prefix (docker), or a directory (dir: skopeo\'s dir: images; oci: OCI layouts)')
    .addOption(new Option('--src <kind>', 'what <source> is').choices(['docker', 'dir', 'oci', 'yaml']).makeOptionMandatory())
    .addOption(new Option('--dest <kind>', 'what <destination> is').choices(['docker', 'dir', 'oci']).makeOptionMandatory())
    .option('--scoped', 'keep the source registry and full repository path under the destination')
    .option('-a, --all', 'copy every platform of multi-platform images')
    .option('--dry-run', 'list what would be copied, copy nothing')
    .option('--keep-going', 'copy what can be copied and report the failures at the end')
    .option('--remove-signatures', 'do not copy simple signatures (dir: signature-N files, registry lookaside)')
    .option('--registries.d <dir>', 'where registry signatures live (default: ~/.config/containers/registries.d, else /etc/containers/registries.d)')
    .option('-q, --quiet', 'print nothing but errors')
    .option('--registries-conf <file>', 'use this registries.conf instead of the system one');
  addRegistryOptions(addRegistryOptions(sync, 'src-'), 'dest-');
  sync.action(async (src: string, dst: string, o: Opts) => {
    const registriesD = await registriesDFrom(o);
    const summary = await syncImages(src, o.src as SyncSourceKind, dst, o.dest as SyncDestKind, {
      scoped: Boolean(o.scoped),
      all: Boolean(o.all),
      dryRun: Boolean(o.dryRun),
      keepGoing: Boolean(o.keepGoing),
      sourceOptions: transportOptions(o, 'src'),
      destOptions: transportOptions(o, 'dest'),
      // Simple signatures travel with each image, as skopeo sync copies them.
      prepare: (source, from, opened) => {
        const destination = new SignatureCarryingDestination(opened, registriesD);
        const read = (digest: string): Promise<Buffer[]> => readSimpleSignatures(from, source, digest, registriesD);
        const beforeWrite = async (top: ManifestBlob): Promise<void> =>
          o.removeSignatures ? destination.carry([], top.digest) : destination.carry(await read(top.digest), top.digest, o.all ? read : undefined);
        return { destination, beforeWrite };
      },
      onImage: (from, to, result) => {
        if (!o.quiet) process.stderr.write(`${o.dryRun ? 'Would copy' : 'Copied'} ${from} -> ${to}${result ? ` ${result}` : ''}\n`);
      },
    });
    if (!o.quiet) process.stderr.write(`${summary.copied} images ${o.dryRun ? 'to copy' : 'copied'}, ${summary.failed.length} failed\n`);
    if (summary.failed.length) throw new BasaltError('network', `sync: ${summary.failed.length} images failed: ${summary.failed.map((f) => `${f.image} (${f.error})`).join('; ')}`);
  });
  image.addCommand(sync);

  const inspect = new Command('inspect')
    .description('show an image\'s metadata (skopeo inspect), or its raw manifest or config')
    .argument('<image>')
    .option('--raw', 'print the manifest exactly as stored')
    .option('--config', 'print the image configuration')
    .addOption(new Option('--format <format>', 'output format').choices(['json']).default('json'))
    .option('--registries-conf <file>', 'use this registries.conf instead of the system one');
  addRegistryOptions(addPlatformOptions(inspect), '');
  inspect.action(async (name: string, o: Opts) => {
    const source = await openSource(name, transportOptions(o, ''));
    try {
      const platform = platformOption(o);
      if (o.raw && !o.config) process.stdout.write((await rawManifest(source)).bytes);
      else if (o.config) {
        const { bytes, config } = await rawConfig(source, platform);
        if (o.raw) process.stdout.write(bytes);
        else printJson(config);
      } else printJson(await inspectImage(source, { ...(platform ? { platform } : {}), name }));
    } finally {
      await source.close();
    }
  });
  image.addCommand(inspect);

  const digest = new Command('digest').description('print the digest of the manifest an image name points at').argument('<image>').option('--registries-conf <file>', 'use this registries.conf');
  addRegistryOptions(digest, '');
  digest.action(async (name: string, o: Opts) => {
    const source = await openSource(name, transportOptions(o, ''));
    try {
      process.stdout.write(`${(await rawManifest(source)).digest}\n`);
    } finally {
      await source.close();
    }
  });
  image.addCommand(digest);

  const tags = new Command('list-tags').description('list the tags of a repository (docker://HOST/REPO), or the names in a layout or the store').argument('<repository>').option('--registries-conf <file>', 'use this registries.conf');
  addRegistryOptions(tags, '');
  tags.action(async (repo: string, o: Opts) => {
    printJson(await listTags(repo, transportOptions(o, '')));
  });
  image.addCommand(tags);

  const del = new Command('delete').description('delete an image from a registry, a layout or the store').argument('<image>').option('--registries-conf <file>', 'use this registries.conf');
  addRegistryOptions(del, '');
  del.action(async (name: string, o: Opts) => {
    await deleteImage(name, transportOptions(o, ''));
  });
  image.addCommand(del);

  image.addCommand(loginCommand());
  image.addCommand(logoutCommand());

  const exp = new Command('export')
    .description('write the image\'s flattened root filesystem (whiteouts applied) as a tar')
    .argument('<image>')
    .option('-o, --output <file>', 'write to <file> instead of standard output');
  addRegistryOptions(addPlatformOptions(exp), '');
  exp.action(async (name: string, o: Opts) => {
    if (!o.output && process.stdout.isTTY) throw new BasaltError('usage', 'refusing to write a tar to a terminal', { hint: 'use -o FILE or redirect standard output' });
    await withImage(name, transportOptions(o, ''), o, async (img) => {
      if (o.output) {
        const { writeStreamAtomic } = await import('../oci/fsutil.js');
        const { PassThrough } = await import('node:stream');
        const tar = new PassThrough({ highWaterMark: 1 << 20 });
        const exporting = exportRootfs(img, tar);
        exporting.catch((e: unknown) => tar.destroy(e as Error));
        await Promise.all([writeStreamAtomic(o.output as string, tar), exporting]);
      } else await exportRootfs(img, process.stdout);
    });
  });
  image.addCommand(exp);

  const unpack = new Command('unpack')
    .description('apply an image\'s layers onto a directory (whiteouts, opaque directories, owners, modes, xattrs, hardlinks, devices as root)')
    .argument('<image>')
    .argument('<dir>');
  addRegistryOptions(addPlatformOptions(unpack), '');
  unpack.action(async (name: string, dir: string, o: Opts) => {
    await withImage(name, transportOptions(o, ''), o, async (img) => {
      const summaries = await unpackImage(img, dir);
      const skipped = summaries.flatMap((s) => [...s.skippedDevices, ...s.skippedXattrs]);
      if (skipped.length) warn(`${skipped.length} entries could not be reproduced exactly (${skipped.slice(0, 3).join(', ')}${skipped.length > 3 ? ', ...' : ''}); run as root to keep devices, owners and xattrs`);
      if (summaries.some((s) => !s.ownership)) warn('file owners were not applied (not root)');
    });
  });
  image.addCommand(unpack);

  const mutate = new Command('mutate')
    .description('change an image\'s configuration and write it as a new image')
    .argument('<image>')
    .option('-t, --tag <destination>', 'where to write the result (default: over <image>)')
    .option('--label <key=value>', 'set a label (key- removes it); repeatable', collect)
    .option('--annotation <key=value>', 'set a manifest annotation (key- removes it); repeatable', collect)
    .option('--env <key=value>', 'set an environment variable (key- removes it); repeatable', collect)
    .option('--entrypoint <cmd>', 'entrypoint, as a JSON array or a command line ("" clears it)')
    .option('--cmd <cmd>', 'default arguments, as a JSON array or a command line ("" clears it)')
    .option('--user <user>', 'user[:group] to run as')
    .option('--workdir <dir>', 'working directory')
    .option('--expose <port>', 'expose a port (80, 53/udp); repeatable', collect)
    .option('--stop-signal <signal>', 'stop signal')
    .option('--author <author>', 'author');
  addRegistryOptions(addRegistryOptions(addPlatformOptions(mutate), ''), 'dest-');
  mutate.action(async (name: string, o: Opts) => {
    const changes: ConfigChanges = {};
    if (o.label) changes.labels = Object.fromEntries((o.label as string[]).map((s) => keyValue(s, 'label')));
    if (o.annotation) changes.annotations = Object.fromEntries((o.annotation as string[]).map((s) => keyValue(s, 'annotation')));
    if (o.env) changes.env = o.env as string[];
    if (o.entrypoint !== undefined) changes.entrypoint = commandLine(o.entrypoint as string);
    if (o.cmd !== undefined) changes.cmd = commandLine(o.cmd as string);
    if (o.user !== undefined) changes.user = o.user as string;
    if (o.workdir !== undefined) changes.workdir = o.workdir as string;
    if (o.expose) changes.exposedPorts = o.expose as string[];
    if (o.stopSignal !== undefined) changes.stopSignal = o.stopSignal as string;
    if (o.author !== undefined) changes.author = o.author as string;
    const epoch = sourceDateEpoch();
    if (epoch !== undefined) changes.created = new Date(epoch * 1000).toISOString();
    await withImage(name, transportOptions(o, ''), o, (img) => storeResult(mutateConfig(img, changes), (o.tag as string | undefined) ?? name, o));
  });
  image.addCommand(mutate);

  const append = new Command('append')
    .description('add a layer made from a directory or a tar file (any compression) on top of an image')
    .argument('<image>')
    .argument('<paths...>', 'directories or tar files, one layer each')
    .option('-t, --tag <destination>', 'where to write the result (default: over <image>)')
    .addOption(new Option('--compress <compression>', 'compression of the new layer').choices(['gzip', 'zstd', 'none']).default('gzip'))
    .option('--owner-root', 'record every file as owned by root');
  addRegistryOptions(addRegistryOptions(addPlatformOptions(append), ''), 'dest-');
  append.action(async (name: string, paths: string[], o: Opts) => {
    await withImage(name, transportOptions(o, ''), o, async (img) => {
      const scratch = await Scratch.create();
      try {
        let out = img;
        const epoch = sourceDateEpoch();
        for (const p of paths)
          out = await appendPath(out, scratch, p, { compression: o.compress as Compression, ownerRoot: Boolean(o.ownerRoot), ...(epoch !== undefined ? { sourceDateEpoch: epoch } : {}) });
        await storeResult(out, (o.tag as string | undefined) ?? name, o);
      } finally {
        await scratch.dispose();
      }
    });
  });
  image.addCommand(append);

  const flatten = new Command('flatten')
    .description('squash an image\'s layers into one')
    .argument('<image>')
    .option('-t, --tag <destination>', 'where to write the result (default: over <image>)')
    .addOption(new Option('--compress <compression>', 'compression of the new layer').choices(['gzip', 'zstd', 'none']).default('gzip'));
  addRegistryOptions(addRegistryOptions(addPlatformOptions(flatten), ''), 'dest-');
  flatten.action(async (name: string, o: Opts) => {
    await withImage(name, transportOptions(o, ''), o, async (img) => {
      const scratch = await Scratch.create();
      try {
        await storeResult(await flattenImage(img, scratch, o.compress as Compression), (o.tag as string | undefined) ?? name, o);
      } finally {
        await scratch.dispose();
      }
    });
  });
  image.addCommand(flatten);

  const pack = new Command('pack')
    .description('turn a directory into a one-layer image (byte-identical for the same input and SOURCE_DATE_EPOCH)')
    .argument('<dir>')
    .requiredOption('-t, --tag <destination>', 'where to write the image')
    .option('--platform <os/arch[/variant]>', 'platform recorded in the config (default: this machine\'s)')
    .addOption(new Option('--format <format>', 'manifest format').choices(['oci', 'v2s2']).default('oci'))
    .addOption(new Option('--compress <compression>', 'layer compression').choices(['gzip', 'zstd', 'none']).default('gzip'))
    .option('--owner-root', 'record every file as owned by root')
    .option('--entrypoint <cmd>', 'entrypoint, as a JSON array or a command line')
    .option('--cmd <cmd>', 'default arguments, as a JSON array or a command line')
    .option('--env <key=value>', 'environment variable; repeatable', collect)
    .option('--label <key=value>', 'label; repeatable', collect);
  addRegistryOptions(pack, 'dest-');
  pack.action(async (dir: string, o: Opts) => {
    const scratch = await Scratch.create();
    try {
      const platform = platformOption(o);
      const epoch = sourceDateEpoch();
      let img = await packImage(dir, scratch, {
        compression: o.compress as Compression,
        format: o.format as 'oci' | 'v2s2',
        ownerRoot: Boolean(o.ownerRoot),
        ...(platform ? { platform } : {}),
        ...(epoch !== undefined ? { sourceDateEpoch: epoch } : {}),
      });
      const changes: ConfigChanges = {};
      if (o.entrypoint !== undefined) changes.entrypoint = commandLine(o.entrypoint as string);
      if (o.cmd !== undefined) changes.cmd = commandLine(o.cmd as string);
      if (o.env) changes.env = o.env as string[];
      if (o.label) changes.labels = Object.fromEntries((o.label as string[]).map((s) => keyValue(s, 'label')));
      if (Object.keys(changes).length) img = mutateConfig(img, changes);
      await storeResult(img, o.tag as string, o);
    } finally {
      await scratch.dispose();
    }
  });
  image.addCommand(pack);

  const ls = new Command('ls').description('list the images in basalt\'s local store').addOption(new Option('--format <format>', 'output format').choices(['human', 'json']).default('human'));
  ls.action(async (o: Opts) => {
    const images = await listImages();
    if (o.format === 'json') printJson(images);
    else for (const i of images) process.stdout.write(`${i.name}\t${i.digest}\n`);
  });
  image.addCommand(ls);

  const rm = new Command('rm').description('remove images from basalt\'s local store (unreferenced blobs are collected)').argument('<names...>');
  rm.action(async (names: string[]) => {
    for (const n of names) await removeImage(n);
  });
  image.addCommand(rm);

  return image;
}

