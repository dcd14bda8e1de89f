import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BasaltError, isBasaltError } from '../oci/errors.js';
import { makeTempDir } from '../oci/fsutil.js';
import { readAci } from './archive.js';
import { discover, download, parseAppString, type AppRequest } from './discovery.js';
import { keysForName, type KeystoreDirs } from './keystore.js';
import { labelOf } from './manifest.js';
import { verifyDetached } from './signature.js';
import { storeAci, type StoredAci } from './store.js';

/** rkt's --insecure-options words basalt honours. */
export type InsecureOption = 'image' | 'tls' | 'http';

export function parseInsecureOptions(s: string | undefined): Set<InsecureOption> {
  const out = new Set<InsecureOption>();
  for (const word of (s ?? '').split(',').map((w) => w.trim()).filter(Boolean)) {
    if (word === 'none') continue;
    if (word === 'all') ['image', 'tls', 'http'].forEach((w) => out.add(w as InsecureOption));
    else if (word === 'image' || word === 'tls' || word === 'http') out.add(word);
    else if (word === 'pubkey' || word === 'ondisk' || word === 'capabilities' || word === 'paths' || word === 'seccomp')
      throw new BasaltError('unsupported', `--insecure-options=${word} is an rkt option basalt does not implement`, { hint: 'basalt knows none, image, tls, http and all' });
    else throw new BasaltError('usage', `--insecure-options: unknown option "${word}"`, { hint: 'use none, image, tls, http or all' });
  }
  return out;
}

export interface FetchOptions {
  insecure: Set<InsecureOption>;
  keystore: KeystoreDirs;
  storeRoot: string;
  /** Discovery port (intranets, tests). */
  port?: number;
}

export interface FetchResult {
  stored: StoredAci;
  /** How the image was found: 'discovery', 'url' or 'file'. */
  via: 'discovery' | 'url' | 'file';
  aciUrl: string;
  /** Fingerprint of the trusted key that signed it; undefined with --insecure-options=image. */
  signedBy?: string;
}

/**
 * Fetches an ACI by name (appc discovery), URL or file, checks that it is a valid ACI, that
 * its name is the one asked for, and that a key trusted for that name signed it, and only
 * then stores it under its image ID. Nothing is stored when a check fails.
 */
export async function fetchAci(target: string, options: FetchOptions): Promise<FetchResult> {
  const insecureHttp = options.insecure.has('http');
  const tls = options.insecure.has('tls');
  let via: FetchResult['via'];
  let aciUrl: string;
  let aci: Buffer;
  let signature: string | undefined;
  let request: AppRequest | undefined;
  const getSignature = async (load: () => Promise<Buffer>): Promise<string | undefined> => {
    try {
      return (await load()).toString('utf8');
    } catch (e) {
      if (!isBasaltError(e, 'not-found')) throw e;
      if (options.insecure.has('image')) return undefined;
      throw new BasaltError('policy', `no signature for ${target}: ${e.message}`, { hint: 'sign it with basalt aci sign, or pass --insecure-options=image to take it unverified' });
    }
  };
  if (/^https?:\/\//.test(target)) {
    via = 'url';
    aciUrl = target;
    aci = await download(target, { insecure: tls, allowHttp: insecureHttp });
    signature = await getSignature(() => download(`${target}.asc`, { insecure: tls, allowHttp: insecureHttp }));
  } else if (await stat(target).then((s) => s.isFile(), () => false)) {
    via = 'file';
    aciUrl = target;
    aci = await readFile(target);
    signature = await getSignature(() => readFile(`${target}.asc`).catch((e: NodeJS.ErrnoException) => {
      throw e.code === 'ENOENT' ? new BasaltError('not-found', `${target}.asc: no signature beside the ACI`) : e;
    }));
  } else {
    via = 'discovery';
    request = parseAppString(target);
    const found = await discover(request, { allowHttp: insecureHttp, skipTlsVerify: tls, ...(options.port ? { port: options.port } : {}) });
    const endpoint = found.endpoints[0] as { aci: string; asc: string };
    aciUrl = endpoint.aci;
    aci = await download(endpoint.aci, { insecure: tls, allowHttp: insecureHttp });
    signature = await getSignature(() => download(endpoint.asc, { insecure: tls, allowHttp: insecureHttp }));
  }

  const tmp = await makeTempDir('aci-fetch');
  try {
    const file = join(tmp, 'image.aci');
    await writeFile(file, aci);
    const info = await readAci(file, { mode: 'strict' }).catch((e: unknown) => {
      if (isBasaltError(e)) throw new BasaltError(e.kind, e.message.replace(file, aciUrl), e.hint ? { hint: e.hint } : undefined);
      throw e;
    });
    if (request) {
      if (info.manifest.name !== request.name)
        throw new BasaltError('policy', `${aciUrl}: the image is named "${info.manifest.name}", not "${request.name}" which discovery was asked for; refusing it`, {
          hint: 'the discovery page points at the wrong image, or someone substituted one',
        });
      for (const [k, v] of Object.entries(request.labels)) {
        const have = labelOf(info.manifest, k);
        if (have !== undefined && have !== v) throw new BasaltError('policy', `${aciUrl}: label ${k} is "${have}", not the "${v}" asked for; refusing it`);
      }
    }
    let signedBy: string | undefined;
    if (!options.insecure.has('image')) {
      if (signature === undefined) throw new BasaltError('policy', `${aciUrl}: no signature`, { hint: 'sign it with basalt aci sign, or pass --insecure-options=image' });
      const keys = await keysForName(options.keystore, info.manifest.name);
      signedBy = await verifyDetached(aci, signature, keys.map((k) => k.key), `${aciUrl} (image ${info.manifest.name})`);
    }
    const stored = await storeAci(options.storeRoot, {
      imageId: info.imageId, manifest: info.manifest, manifestBytes: info.manifestBytes, aci, source: aciUrl,
      ...(signature !== undefined ? { signature } : {}), ...(signedBy ? { signedBy } : {}),
    });
    return { stored, via, aciUrl, ...(signedBy ? { signedBy } : {}) };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
