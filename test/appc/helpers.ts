import { spawn, spawnSync } from 'node:child_process';
import { CLI } from '../harness/cli.js';
import { mkdir, readFile, writeFile, copyFile, chmod } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PassThrough } from 'node:stream';
import { cachedFixture, cacheKey } from '../harness/fixture-cache.js';
import { requireTool, run } from '../harness/tools.js';
import { TarWriter, type TarHeader } from '../../src/oci/layer/tar.js';

const APPC_SRC = '/usr/share/gocode/src/github.com/appc/spec';

/**
 * actool 0.8.11 built offline from Debian's golang-github-appc-spec-dev sources in GOPATH
 * mode (no module download), once per machine through the fixture cache.
 */
export async function actool(): Promise<string> {
  requireTool('go', 'install Debian\'s golang-go (./scripts/setup does)');
  const probe = spawnSync('test', ['-d', `${APPC_SRC}/actool`]);
  if (probe.status !== 0) throw new Error(`actool's sources are missing (${APPC_SRC}/actool): install Debian's golang-github-appc-spec-dev (./scripts/setup does)`);
  const dir = await cachedFixture(cacheKey('actool', { version: '0.8.11+dfsg-2.1', go: run('go', ['version']).trim() }), async (d) => {
    const r = spawnSync('go', ['build', '-o', join(d, 'actool'), 'github.com/appc/spec/actool'], {
      env: { ...process.env, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOFLAGS: '', GOCACHE: join(d, 'gocache'), GOPROXY: 'off' },
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`actool does not build offline from Debian's sources (GOPATH=/usr/share/gocode, GO111MODULE=off): ${r.stderr}`);
    run('rm', ['-rf', join(d, 'gocache')]);
  });
  return join(dir, 'actool');
}

export interface ToolResult {
  status: number;
  out: string;
}

export function runActool(bin: string, args: string[]): ToolResult {
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** A statically linked hello program (gcc -static against glibc's libc.a), built once per machine. */
export async function helloProgram(): Promise<string> {
  requireTool('gcc', 'install Debian\'s gcc and libc6-dev (./scripts/setup does)');
  const source = '#include <unistd.h>\nint main(void){static const char m[]="Hello from an App Container image!\\n";write(1,m,sizeof m-1);return 0;}\n';
  const dir = await cachedFixture(cacheKey('aci-hello', { source }), async (d) => {
    await writeFile(join(d, 'hello.c'), source);
    run('gcc', ['-static', '-Os', '-o', join(d, 'hello'), join(d, 'hello.c')]);
  });
  return join(dir, 'hello');
}

export const GREETING = 'Hello from an App Container image!';

export function manifestOf(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    acKind: 'ImageManifest', acVersion: '0.8.11', name,
    labels: [{ name: 'version', value: '1.0.0' }, { name: 'os', value: 'linux' }, { name: 'arch', value: 'amd64' }],
    app: { exec: ['/bin/hello'], user: '0', group: '0' },
    ...extra,
  };
}

/** An image layout with the hello program at /bin/hello. */
export async function helloLayout(dir: string, manifest: Record<string, unknown>): Promise<string> {
  await mkdir(join(dir, 'rootfs', 'bin'), { recursive: true });
  await copyFile(await helloProgram(), join(dir, 'rootfs', 'bin', 'hello'));
  await chmod(join(dir, 'rootfs', 'bin', 'hello'), 0o755);
  await writeFile(join(dir, 'manifest'), JSON.stringify(manifest));
  return dir;
}

export interface RawEntry {
  path: string;
  type?: TarHeader['type'];
  data?: string | Buffer;
  linkname?: string;
}

/** A tar made entry by entry (for archives no well-behaved tool would write). */
export async function rawTar(entries: RawEntry[]): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const writer = new TarWriter(out);
  for (const e of entries) {
    const type = e.type ?? (e.data !== undefined ? 'file' : 'directory');
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    await writer.add({ path: e.path, type, mode: type === 'directory' ? 0o755 : 0o644, uid: 0, gid: 0, size: type === 'file' ? data.length : 0, mtime: 0, ...(e.linkname ? { linkname: e.linkname } : {}) }, type === 'file' ? data : undefined);
  }
  await writer.finish();
  return Buffer.concat(chunks);
}

export async function writeAciFile(path: string, entries: RawEntry[], compression: 'gzip' | 'bzip2' | 'xz' | 'none' = 'gzip'): Promise<string> {
  const tar = await rawTar(entries);
  if (compression === 'none') await writeFile(path, tar);
  else if (compression === 'gzip') await writeFile(path, gzipSync(tar));
  else {
    const r = spawnSync(compression, ['-c'], { input: tar, maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`${compression} failed: ${r.stderr.toString()}`);
    await writeFile(path, r.stdout);
  }
  return path;
}

/** An OpenPGP key pair made by gpg in its own home (exported armored); the agent is stopped after. */
export async function gpgKey(dir: string, uid: string): Promise<{ priv: string; pub: string; fingerprint: string }> {
  requireTool('gpg', 'install Debian\'s gnupg');
  const home = join(dir, `gnupg-${uid.replace(/\W/g, '')}`);
  await mkdir(home, { recursive: true, mode: 0o700 });
  const env = { ...process.env, GNUPGHOME: home };
  try {
    run('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', uid, 'ed25519', 'sign', 'never'], { env });
    const priv = join(dir, `${uid.replace(/\W/g, '')}.priv.asc`);
    const pub = join(dir, `${uid.replace(/\W/g, '')}.pub.asc`);
    await writeFile(priv, run('gpg', ['--batch', '--armor', '--export-secret-keys'], { env }));
    await writeFile(pub, run('gpg', ['--batch', '--armor', '--export'], { env }));
    const colons = run('gpg', ['--batch', '--with-colons', '--fingerprint'], { env });
    const fingerprint = (/^fpr:+([0-9A-F]+):/m.exec(colons)?.[1] ?? '').toLowerCase();
    return { priv, pub, fingerprint };
  } finally {
    spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env });
  }
}

/** A plain HTTP server on loopback serving fixed pages by path (query ignored), with a request log. */
export async function staticServer(pages: Record<string, string | Buffer | (() => string | Buffer)>): Promise<{ port: number; url: string; requests: string[]; close(): Promise<void>; server: Server }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const page = pages[path];
    if (page === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    const body = typeof page === 'function' ? page() : page;
    res.writeHead(200, { 'content-type': path.endsWith('.aci') ? 'application/octet-stream' : 'text/html' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return { port, url: `http://127.0.0.1:${port}`, requests, server, close: () => new Promise((r) => server.close(() => r())) };
}

export async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, 'utf8')) as unknown;
}

/**
 * Runs a program without blocking this process's event loop (spawnSync would starve the
 * loopback servers the same test runs, and the two would wait on each other for ever).
 */
export function runAsync(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number; stdout: string; stderr: string; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ status: code ?? -1, stdout, stderr, out: `${stdout}${stderr}` }));
  });
}

export function basaltAsync(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number; stdout: string; stderr: string; out: string }> {
  return runAsync(process.execPath, [CLI, ...args], env);
}

export async function basaltAsyncOk(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await basaltAsync(args, env);
  if (r.status !== 0) throw new Error(`basalt ${args.join(' ')} exited ${r.status}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}
