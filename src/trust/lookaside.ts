import { link, mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dump, request, type WireResponse } from '../oci/registry/http-client.js';
import { BasaltError, ioError } from '../oci/errors.js';
import { parseDigest } from '../oci/digest.js';
import { parseReference } from '../oci/reference.js';
import { fsyncDir, tempPathFor } from '../oci/fsutil.js';

/**
 * Lookaside ("sigstore" in older registries.d) storage of simple signatures, laid out as
 * containers/image does (docs/signature-protocols.md, docker/registries_d.go):
 *
 *     BASE/REPOSITORY-PATH@ALGO=HEX/signature-N      N = 1, 2, …
 *
 * REPOSITORY-PATH is the reference's path without host, tag or digest, fully expanded
 * (docker.io/busybox → library/busybox). Readers try N = 1, 2, … and stop at the first
 * missing one; writers use the first free N. file:// bases are read and written, http(s)
 * bases only read. A signature file holds the raw signature bytes.
 */

/**
 * containers/image gives up after this many signatures ("assuming that's unreasonable and
 * a server error"); writing stops one short of it so podman can still read them all.
 */
const MAX_SIGNATURES = 128;
/** containers/image's iolimits.MaxSignatureBodySize. */
const MAX_SIGNATURE_BYTES = 4 * 1024 * 1024;
const HTTP_TIMEOUT_MS = 60_000;

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

function checkRepositoryPath(repositoryPath: string): void {
  // distribution/reference's path grammar; it also rules out "..", "." and empty components.
  if (repositoryPath === '' || !repositoryPath.split('/').every((c) => PATH_COMPONENT.test(c)))
    throw new BasaltError('invalid', `"${repositoryPath}" is not a repository path for lookaside signatures`, {
      hint: 'give the repository without host, tag or digest, e.g. "library/busybox" for docker.io/busybox',
    });
}

/**
 * The repository path containers/image uses in lookaside URLs for an image reference:
 * distribution/reference's Path, i.e. without host, tag or digest and with docker.io's
 * implicit "library/" (busybox → library/busybox, localhost:5000/a/b:v1 → a/b).
 */
export function lookasideRepositoryPath(reference: string): string {
  return parseReference(reference).repository;
}

function parseBase(baseUrl: string): URL {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new BasaltError('invalid', `lookaside URL "${baseUrl}" is not a URL`, { hint: 'write it as file:///PATH or https://HOST/PATH, as in registries.d' });
  }
  if (url.protocol !== 'file:' && url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new BasaltError('unsupported', `lookaside URL "${baseUrl}" uses ${url.protocol.replace(/:$/, '')}; only file, http and https are supported`);
  return url;
}

/** The suffix containers/image appends to a lookaside base for one signature. */
function signatureSuffix(repositoryPath: string, manifestDigest: string, index: number): string {
  checkRepositoryPath(repositoryPath);
  const { algorithm, hex } = parseDigest(manifestDigest, 'manifest digest');
  return `/${repositoryPath}@${algorithm}=${hex}/signature-${index}`;
}

/** Where signature `index` (1-based) of an image lives under `baseUrl`, as a URL. */
export function lookasideSignatureUrl(baseUrl: string, repositoryPath: string, manifestDigest: string, index: number): URL {
  const url = parseBase(baseUrl);
  // Go's url.Parse gives "http://host" an empty path where WHATWG gives "/"; keep Go's URLs.
  const noPath = url.pathname === '/' && !/^[a-z]+:\/\/[^/?#]*\/(?:[?#]|$)/i.test(baseUrl);
  url.pathname = (noPath ? '' : url.pathname) + signatureSuffix(repositoryPath, manifestDigest, index);
  return url;
}

function fileBasePath(url: URL, baseUrl: string): string {
  try {
    return fileURLToPath(url);
  } catch (e) {
    throw new BasaltError('invalid', `lookaside URL "${baseUrl}" is not a local file URL: ${(e as Error).message}`, { hint: 'write it as file:///ABSOLUTE/PATH' });
  }
}

async function readFileSignature(path: string): Promise<Buffer | undefined> {
  try {
    const data = await readFile(path);
    if (data.length > MAX_SIGNATURE_BYTES) throw new BasaltError('invalid', `lookaside signature ${path} is ${data.length} bytes, more than the ${MAX_SIGNATURE_BYTES} a signature may have`);
    return data;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(`reading lookaside signature ${path}`, e);
  }
}

async function readHttpSignature(url: URL): Promise<Buffer | undefined> {
  const shown = url.toString();
  let res: WireResponse;
  try {
    res = await request(url, { method: 'GET', timeoutMs: HTTP_TIMEOUT_MS, maxRedirections: 5 });
  } catch (e) {
    throw new BasaltError('network', `fetching lookaside signature ${shown}: ${(e as Error).message}`, { hint: 'check the lookaside URL in registries.d and that the server is reachable', cause: e });
  }
  if (res.statusCode === 404) {
    await dump(res.body);
    return undefined;
  }
  if (res.statusCode !== 200) {
    await dump(res.body);
    const kind = res.statusCode === 401 ? 'auth' : res.statusCode === 403 ? 'denied' : 'network';
    throw new BasaltError(kind, `fetching lookaside signature ${shown}: HTTP ${res.statusCode}; only 200 (a signature) or 404 (no more signatures) are expected`, {
      hint: 'the lookaside server failed or refused the request; signatures cannot be checked until it answers',
    });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_SIGNATURE_BYTES) {
      res.body.destroy();
      throw new BasaltError('invalid', `lookaside signature ${shown} is larger than the ${MAX_SIGNATURE_BYTES} bytes a signature may have`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** signature-1, -2, ... until the first missing one; http 404 ends the list. */
export async function readLookasideSignatures(baseUrl: string, repositoryPath: string, manifestDigest: string): Promise<Buffer[]> {
  const base = parseBase(baseUrl);
  const signatures: Buffer[] = [];
  for (let index = 1; ; index++) {
    if (index > MAX_SIGNATURES)
      throw new BasaltError('invalid', `lookaside storage ${baseUrl} holds more than ${MAX_SIGNATURES} signatures for ${repositoryPath}@${manifestDigest}; assuming a server error`);
    const url = lookasideSignatureUrl(baseUrl, repositoryPath, manifestDigest, index);
    const sig = base.protocol === 'file:' ? await readFileSignature(fileBasePath(url, baseUrl)) : await readHttpSignature(url);
    if (sig === undefined) return signatures;
    signatures.push(sig);
  }
}

/**
 * Stores `signature` as the next free signature-N under a file:// base; returns the path
 * written. The file appears whole (temp file, fsync, then a hard link that fails if the
 * name is taken), so concurrent writers each get their own N and nothing is overwritten.
 */
export async function writeLookasideSignature(baseUrl: string, repositoryPath: string, manifestDigest: string, signature: Buffer): Promise<string> {
  const base = parseBase(baseUrl);
  if (base.protocol !== 'file:')
    throw new BasaltError('unsupported', `cannot write signatures to ${baseUrl}: http(s) lookaside storage is read-only`, {
      hint: 'write to a file:// lookaside (registries.d lookaside-staging) and publish that directory on the web server',
    });
  if (signature.length === 0) throw new BasaltError('invalid', 'refusing to store an empty signature');
  const dir = dirname(fileBasePath(lookasideSignatureUrl(baseUrl, repositoryPath, manifestDigest, 1), baseUrl));
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw ioError(`creating lookaside directory ${dir}`, e);
  }
  const tmp = tempPathFor(`${dir}/signature`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(signature);
      await fh.sync();
    } finally {
      await fh.close();
    }
    // Go one short of the reader's limit: containers/image errors out when it reaches it.
    for (let index = 1; index < MAX_SIGNATURES; index++) {
      const path = fileBasePath(lookasideSignatureUrl(baseUrl, repositoryPath, manifestDigest, index), baseUrl);
      try {
        await link(tmp, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw e;
      }
      await fsyncDir(dir);
      return path;
    }
    throw new BasaltError('invalid', `${dir} already holds ${MAX_SIGNATURES - 1} signatures, the most containers/image reads`, { hint: 'remove signatures that are no longer needed' });
  } catch (e) {
    throw ioError(`writing a lookaside signature in ${dir}`, e);
  } finally {
    await rm(tmp, { force: true });
  }
}
