import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { BasaltError } from '../oci/errors.js';
import { readAci } from './archive.js';
import { labelOf } from './manifest.js';

interface Served {
  file: string;
  name: string;
  version: string | undefined;
  os: string | undefined;
  arch: string | undefined;
}

export interface AciServer {
  url: string;
  server: Server;
  images: number;
  close(): Promise<void>;
}

/**
 * Serves a directory of ACIs for appc discovery: every request with `?ac-discovery=1` gets
 * an HTML page with one `ac-discovery` meta tag per image name found (template
 * `http://HOST/_aci/NAME/{version}/{os}/{arch}.{ext}`) and, when the directory holds
 * `pubkeys.gpg`, an `ac-discovery-pubkeys` tag. Files are served as they are; the ACIs are
 * read once at start (restart to pick up new ones). Plain HTTP: meant for intranets.
 */
export async function serveAcis(dir: string, listen: { host: string; port: number }): Promise<AciServer> {
  const images: Served[] = [];
  const names = await readdir(dir).catch(() => {
    throw new BasaltError('not-found', `${dir}: no such directory`);
  });
  for (const n of names.sort()) {
    if (!n.endsWith('.aci')) continue;
    const file = join(dir, n);
    const { manifest } = await readAci(file, { mode: 'strict' });
    images.push({ file, name: manifest.name, version: labelOf(manifest, 'version'), os: labelOf(manifest, 'os'), arch: labelOf(manifest, 'arch') });
  }
  const hasPubkeys = names.includes('pubkeys.gpg');
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const host = req.headers.host ?? `${listen.host}:${listen.port}`;
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const sendFile = (file: string, type: string): void => {
      stat(file).then(
        (st) => {
          res.writeHead(200, { 'content-type': type, 'content-length': st.size });
          if (req.method === 'HEAD') return void res.end();
          createReadStream(file).on('error', () => res.destroy()).pipe(res);
        },
        () => send(404, 'not found\n'),
      );
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    if (url.searchParams.get('ac-discovery') === '1') {
      const seen = [...new Set(images.map((i) => i.name))];
      const metas = seen.map((name) => `<meta name="ac-discovery" content="${escapeHtml(name)} http://${escapeHtml(host)}/_aci/${escapeHtml(name)}/{version}/{os}/{arch}.{ext}">`);
      if (hasPubkeys) metas.push(...seen.map((name) => `<meta name="ac-discovery-pubkeys" content="${escapeHtml(name)} http://${escapeHtml(host)}/pubkeys.gpg">`));
      return send(200, `<!DOCTYPE html>\n<html><head>\n${metas.join('\n')}\n</head><body></body></html>\n`, 'text/html; charset=utf-8');
    }
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      return send(400, 'bad request\n');
    }
    const m = /^\/_aci\/(.+)\/([^/]+)\/([^/]+)\/([^/]+)\.(aci|aci\.asc)$/.exec(path);
    if (m) {
      const [, name, version, os, arch, ext] = m as unknown as [string, string, string, string, string, string];
      const hit = images.find((i) => i.name === name && (i.version === version || (version === 'latest' && i.version === undefined)) && (i.os ?? os) === os && (i.arch ?? arch) === arch)
        ?? (version === 'latest' ? images.filter((i) => i.name === name && (i.os ?? os) === os && (i.arch ?? arch) === arch).at(-1) : undefined);
      if (!hit) return send(404, `no ACI ${name} version ${version} for ${os}/${arch}\n`);
      return sendFile(ext === 'aci' ? hit.file : `${hit.file}.asc`, ext === 'aci' ? 'application/octet-stream' : 'text/plain; charset=utf-8');
    }
    const base = path.replace(/^\/+/, '');
    if (base.includes('/') || base === '' || base.startsWith('.')) return send(404, 'not found\n');
    if (!base.endsWith('.aci') && !base.endsWith('.asc') && base !== 'pubkeys.gpg') return send(404, 'not found\n');
    return sendFile(join(dir, base), base.endsWith('.aci') ? 'application/octet-stream' : 'text/plain; charset=utf-8');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new BasaltError('io', `cannot listen on ${listen.host}:${listen.port}: ${e.message}`, { cause: e })));
    server.listen(listen.port, listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const hostPart = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${hostPart}:${addr.port}`,
    server,
    images: images.length,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
