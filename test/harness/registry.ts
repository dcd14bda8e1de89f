import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, get as httpGet, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { createPrivateKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify as toYaml } from 'yaml';
import { requireTool, run, tempDir } from './tools.js';

/**
 * Test registries: Debian's docker-registry (Distribution 2.8) on a free loopback port with
 * its own storage, open, with htpasswd Basic auth, or with token auth served by a small
 * token issuer in this process.
 */

export type RegistryFlavour = 'open' | 'htpasswd' | 'token';

export interface TestRegistryOptions {
  flavour?: RegistryFlavour;
  /** Accounts for htpasswd/token flavours (default: { alice: 'wonderland' }). */
  users?: Record<string, string>;
  /** Token flavour: which actions a user (undefined: anonymous) gets on a repository; default all requested for users, none for anonymous. */
  grant?: (user: string | undefined, repository: string, requested: string[]) => string[];
  /** Token flavour: token lifetime in seconds (default 300). */
  tokenLifetime?: number;
  /** Serve https with a fresh self-signed certificate for 127.0.0.1 (its directory is `certDir`). */
  tls?: boolean;
}

export interface TokenRequestRecord {
  user: string | undefined;
  scopes: string[];
  status: number;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`, for references. */
  host: string;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  flavour: RegistryFlavour;
  users: Record<string, string>;
  /** The registry's own log (access lines and messages) so far. */
  logs(): string;
  /** Token flavour: every token request, in order. */
  tokenRequests: TokenRequestRecord[];
  /** Token flavour: the issuer's URL. */
  tokenRealm?: string;
  storageDir: string;
  /** TLS registries: a certs.d-style directory holding the server's certificate as ca.crt. */
  certDir?: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

interface TokenIssuer {
  server: Server;
  realm: string;
  stop(): Promise<void>;
}

/**
 * A token server in Distribution's protocol: GET ?service=&scope=…&account= with optional
 * Basic credentials; answers {token, access_token, expires_in, issued_at}. Tokens are ES256
 * JWTs carrying the signing certificate in `x5c`, which Distribution 2.8 checks against its
 * rootcertbundle.
 */
async function startTokenIssuer(opts: {
  key: KeyObject;
  certDer: Buffer;
  issuer: string;
  service: string;
  users: Record<string, string>;
  grant: (user: string | undefined, repository: string, requested: string[]) => string[];
  lifetime: number;
  record: TokenRequestRecord[];
}): Promise<TokenIssuer> {
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
    let user: string | undefined;
    const authz = req.headers.authorization;
    if (authz?.startsWith('Basic ')) {
      const decoded = Buffer.from(authz.slice(6), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const name = decoded.slice(0, colon);
      const pass = decoded.slice(colon + 1);
      if (colon < 0 || opts.users[name] !== pass) {
        opts.record.push({ user: name, scopes, status: 401 });
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="basalt-test-token"' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }));
        return;
      }
      user = name;
    }
    const access = scopes.flatMap((s) => {
      const m = /^repository:(.+):([^:]*)$/.exec(s);
      if (!m?.[1]) return [];
      const actions = opts.grant(user, m[1], (m[2] ?? '').split(',').filter((a) => a !== ''));
      return [{ type: 'repository', name: m[1], actions }];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [opts.certDer.toString('base64')] };
    const claims = { iss: opts.issuer, sub: user ?? '', aud: opts.service, exp: now + opts.lifetime, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(signingInput), { key: opts.key, dsaEncoding: 'ieee-p1363' });
    const token = `${signingInput}.${b64url(signature)}`;
    opts.record.push({ user, scopes, status: 200 });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: opts.lifetime, issued_at: new Date(now * 1000).toISOString() }));
  };
  const server = createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    server,
    realm: `http://127.0.0.1:${port}/token`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** GET /v2/ status, accepting the test's self-signed certificate. */
function probe(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? httpsGet : httpGet;
    const req = get(`${url}/v2/`, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
}

async function waitForRegistry(url: string, child: ChildProcess, logs: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}:\n${logs()}`);
    try {
      const status = await probe(url);
      if (status === 200 || status === 401) return;
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  throw new Error(`docker-registry did not answer ${url}/v2/ within 15 s:\n${logs()}`);
}

/** Starts a registry; call stop() in an `after` hook. */
export async function startRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const binary = requireTool('docker-registry', 'install the docker-registry package (./scripts/setup does)');
  const flavour = options.flavour ?? 'open';
  const users = options.users ?? { alice: 'wonderland' };
  const dir = await tempDir(`registry-${flavour}`);
  const storageDir = join(dir, 'storage');
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const tokenRequests: TokenRequestRecord[] = [];
  let issuer: TokenIssuer | undefined;

  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
    storage: { filesystem: { rootdirectory: storageDir }, delete: { enabled: true }, cache: { blobdescriptor: 'inmemory' } },
    http: { addr: host, secret: randomBytes(16).toString('hex'), debug: { addr: '' } },
  };
  delete (config.http as Record<string, unknown>).debug;

  if (flavour === 'htpasswd') {
    requireTool('htpasswd', 'install apache2-utils (./scripts/setup does)');
    const lines = Object.entries(users).map(([u, p]) => run('htpasswd', ['-Bbn', u, p]).trim());
    const file = join(dir, 'htpasswd');
    await writeFile(file, `${lines.join('\n')}\n`);
    config.auth = { htpasswd: { realm: 'basalt-test', path: file } };
  } else if (flavour === 'token') {
    requireTool('openssl', 'install openssl (./scripts/setup does)');
    const keyFile = join(dir, 'token.key');
    const certFile = join(dir, 'token.crt');
    run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=basalt-test-token-issuer']);
    const key = createPrivateKey(await readFile(keyFile));
    const certDer = Buffer.from(new X509Certificate(await readFile(certFile)).raw);
    const service = 'basalt-test-registry';
    const iss = 'basalt-test-issuer';
    const grant = options.grant ?? ((user: string | undefined, _repo: string, requested: string[]) => (user === undefined ? [] : requested));
    issuer = await startTokenIssuer({ key, certDer, issuer: iss, service, users, grant, lifetime: options.tokenLifetime ?? 300, record: tokenRequests });
    config.auth = { token: { realm: issuer.realm, service, issuer: iss, rootcertbundle: certFile } };
  }

  let certDir: string | undefined;
  if (options.tls) {
    requireTool('openssl', 'install openssl (./scripts/setup does)');
    certDir = join(dir, 'certs.d');
    await mkdir(certDir);
    const keyFile = join(dir, 'tls.key');
    const certFile = join(certDir, 'ca.crt');
    run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    (config.http as Record<string, unknown>).tls = { certificate: certFile, key: keyFile };
  }

  const configFile = join(dir, 'config.yml');
  await writeFile(configFile, toYaml(config));
  // The log goes to a file, not a pipe: while a test runs synchronous commands (spawnSync) no
  // one reads a pipe, and a registry blocked on a full pipe stops answering.
  const logFile = join(dir, 'registry.log');
  const logFd = openSync(logFile, 'a');
  const child = spawn(binary, ['serve', configFile], { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  const logs = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const url = `${options.tls ? 'https' : 'http'}://${host}`;
  try {
    await waitForRegistry(url, child, logs);
  } catch (e) {
    child.kill('SIGKILL');
    await issuer?.stop();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const result: TestRegistry = {
    host,
    url,
    flavour,
    users,
    logs,
    tokenRequests,
    storageDir,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(3000)]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await issuer?.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  if (issuer) result.tokenRealm = issuer.realm;
  if (certDir) result.certDir = certDir;
  return result;
}
