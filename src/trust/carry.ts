import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { BasaltError, ioError } from '../oci/errors.js';
import type { Descriptor, ManifestBlob } from '../oci/manifest.js';
import type { BlobInfo, ImageDestination, ImageSource, ProgressSink } from '../oci/transport.js';
import { parseImageName } from '../oci/transports/index.js';
import { DirDestination, DirSource } from '../oci/transports/dir.js';
import { writeFileAtomic } from '../oci/fsutil.js';
import { imageIdentity } from './image-identity.js';
import { lookasideSignatureUrl, readLookasideSignatures } from './lookaside.js';
import { signatureStorageFor, type RegistriesD, type SignatureStorage } from './registries-d.js';

/**
 * Simple signatures travel with `image copy`, as skopeo copies them (containers/image's
 * GetSignatures / PutSignatures per transport):
 * - `dir:` keeps them beside the image as signature-N files;
 * - `docker://` keeps them in lookaside storage (registries.d): read from `lookaside`,
 *   written to `lookaside-staging` (else `lookaside`); with neither configured, the built-in
 *   default containers/image uses (/var/lib/containers/sigstore as root);
 * - OCI layouts, archives and container storage through podman hold none: a signed image is
 *   refused there unless signatures are dropped (--remove-signatures), as skopeo refuses.
 */

/** containers/image's default lookaside when registries.d names none (read and write). */
export function builtinLookaside(env: NodeJS.ProcessEnv = process.env): string {
  if (process.geteuid?.() === 0) return 'file:///var/lib/containers/sigstore';
  return pathToFileURL(join(env.HOME ?? homedir(), '.local/share/containers/sigstore')).href;
}

export function lookasideReadBase(storage: SignatureStorage): string {
  return storage.lookaside ?? builtinLookaside();
}

export function lookasideWriteBase(storage: SignatureStorage): string {
  return storage.lookasideStaging ?? storage.lookaside ?? builtinLookaside();
}

/**
 * The simple signatures an image source holds for `manifestDigest` (the manifest about to be
 * copied: the top one, or the instance picked from an index). Raw bytes, not verified here:
 * copying does not judge them (the policy check does, when asked).
 */
export async function readSimpleSignatures(imageName: string, source: ImageSource, manifestDigest: string, registriesD: RegistriesD): Promise<Buffer[]> {
  if (source instanceof DirSource) return source.signatures(manifestDigest);
  const identity = imageIdentity(imageName, source.location);
  if (identity.transport !== 'docker' || identity.dockerReference === undefined) return [];
  const storage = signatureStorageFor(registriesD, identity);
  return readLookasideSignatures(lookasideReadBase(storage), identity.dockerReference.repository, manifestDigest);
}

/** Where a destination keeps simple signatures; 'unsupported' for transports that hold none. */
type SignatureTarget = { kind: 'dir' } | { kind: 'lookaside'; base: string; repository: string };

function signatureTarget(destName: string, destination: ImageDestination, registriesD: RegistriesD): SignatureTarget {
  if (destination instanceof DirDestination) return { kind: 'dir' };
  const { transport } = parseImageName(destName);
  const identity = transport.name === 'docker' ? imageIdentity(destName) : undefined;
  if (identity?.dockerReference === undefined)
    throw new BasaltError('unsupported', `cannot copy simple signatures to ${destName}: ${transport.name} images hold no simple signatures (skopeo refuses too)`, {
      hint: 'copy to dir: or docker:// (lookaside storage), or pass --remove-signatures to copy the image without them',
    });
  const base = lookasideWriteBase(signatureStorageFor(registriesD, identity));
  if (!base.startsWith('file:'))
    throw new BasaltError('unsupported', `cannot write the signatures of ${destName} to ${base}: http(s) lookaside storage is read-only`, {
      hint: 'set lookaside-staging (a file:// directory) for the registry in registries.d and publish it, or pass --remove-signatures',
    });
  return { kind: 'lookaside', base, repository: identity.dockerReference.repository };
}

/**
 * Replaces the lookaside signatures of a manifest with `signatures` (signature-1…N, each
 * written whole) and removes any higher-numbered ones, as containers/image does when it
 * stores a copied image's signatures.
 */
export async function replaceLookasideSignatures(base: string, repository: string, manifestDigest: string, signatures: readonly Buffer[]): Promise<string[]> {
  const path = (i: number): string => fileURLToPath(lookasideSignatureUrl(base, repository, manifestDigest, i));
  const written: string[] = [];
  for (const [i, sig] of signatures.entries()) {
    if (sig.length === 0) throw new BasaltError('invalid', 'refusing to store an empty signature');
    await writeFileAtomic(path(i + 1), sig);
    written.push(path(i + 1));
  }
  // Readers stop at the first missing signature, so stopping there too removes every stale one.
  for (let i = signatures.length + 1; ; i++) {
    try {
      await rm(path(i));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') break;
      throw ioError(`removing stale signature ${path(i)}`, e);
    }
  }
  return written;
}

/**
 * A destination that stores simple signatures with the image it commits. `carry()` is called
 * before anything is written (copy's beforeWrite) with the source's signatures of the manifest
 * being copied; it refuses a destination that cannot hold them. At commit the written top
 * manifest must be that very manifest (a converted one would void the signatures), checked
 * before the image is made visible.
 */
export class SignatureCarryingDestination implements ImageDestination {
  private signatures: Buffer[] = [];
  private signedDigest: string | undefined;
  /** Reads the source's signatures of an index's instance (copies with --all). */
  private instanceReader: ((digest: string) => Promise<Buffer[]>) | undefined;
  private readonly instances = new Map<string, Buffer[]>();
  private target: SignatureTarget | undefined;
  private topDigest: string | undefined;
  /** Where lookaside signatures were written (after commit). */
  written: string[] = [];

  constructor(
    private readonly inner: ImageDestination,
    private readonly registriesD: RegistriesD,
    /** Makes one more signature for the copied manifest (skopeo --sign-by into dir:). */
    private readonly sign?: (manifestDigest: string) => Promise<Buffer>,
  ) {}

  get name(): string {
    return this.inner.name;
  }
  get supportedManifestTypes(): readonly string[] | undefined {
    return this.inner.supportedManifestTypes;
  }
  get acceptsZstd(): boolean {
    return this.inner.acceptsZstd;
  }
  get maxParallelBlobs(): number {
    return this.inner.maxParallelBlobs;
  }

  /** How many signatures will be stored (the top manifest's and its instances'). */
  get count(): number {
    let n = this.signatures.length;
    for (const list of this.instances.values()) n += list.length;
    return n;
  }

  /**
   * `readInstance`, when given, is asked for the signatures of every manifest an index points
   * at as it is stored (copies with --all carry those too, as containers/image does).
   */
  carry(signatures: Buffer[], manifestDigest: string, readInstance?: (digest: string) => Promise<Buffer[]>): void {
    this.signatures = signatures;
    this.signedDigest = manifestDigest;
    this.instanceReader = readInstance;
    if (signatures.length > 0 || this.sign) this.target = signatureTarget(this.inner.name, this.inner, this.registriesD);
  }

  hasBlob(desc: Descriptor, from?: { registry: string; repository: string }): Promise<boolean> {
    return this.inner.hasBlob(desc, from);
  }

  putBlob(data: Readable, info: BlobInfo, progress?: ProgressSink): Promise<Descriptor> {
    return this.inner.putBlob(data, info, progress);
  }

  async putManifest(manifest: ManifestBlob, options: { top: boolean }): Promise<void> {
    if (!options.top && this.instanceReader) {
      // A converted instance has a new digest the source holds no signatures for: nothing to carry.
      const signatures = await this.instanceReader(manifest.digest);
      if (signatures.length > 0) {
        this.target ??= signatureTarget(this.inner.name, this.inner, this.registriesD);
        this.instances.set(manifest.digest, signatures);
      }
    }
    if (options.top) {
      this.topDigest = manifest.digest;
      // Checked before the top manifest is stored: for a registry that is what makes the image visible.
      if (this.signatures.length > 0 && manifest.digest !== this.signedDigest)
        throw new BasaltError('usage', `the copy would write manifest ${manifest.digest}, but the ${this.signatures.length} signature(s) sign ${this.signedDigest}: converting a signed image voids its signatures`, {
          hint: 'copy without --format/--dest-compress, or pass --remove-signatures (and sign the result)',
        });
    }
    return this.inner.putManifest(manifest, options);
  }

  async commit(): Promise<void> {
    const digest = this.topDigest;
    if (digest === undefined) return this.inner.commit();
    const all = this.sign ? [...this.signatures, await this.sign(digest)] : this.signatures;
    if (this.target?.kind === 'dir') {
      const dir = this.inner as DirDestination;
      dir.setSignatures(all);
      for (const [instance, signatures] of this.instances) dir.setSignatures(signatures, instance);
    }
    await this.inner.commit();
    if (this.target?.kind === 'lookaside') {
      const target = this.target;
      const lists: [string, Buffer[]][] = [[digest, this.signatures], ...this.instances];
      for (const [manifestDigest, signatures] of lists)
        if (signatures.length > 0) this.written.push(...(await replaceLookasideSignatures(target.base, target.repository, manifestDigest, signatures)));
    }
  }

  abort(): Promise<void> {
    return this.inner.abort();
  }
}
