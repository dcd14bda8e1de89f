import { spawn } from 'node:child_process';
import { BasaltError } from '../errors.js';
import type { Credentials } from './credentials.js';

/**
 * docker-credential-helpers' protocol: `docker-credential-NAME get` reads the registry on
 * stdin and prints {"ServerURL","Username","Secret"}; a Username of "<token>" means the
 * Secret is an identity token. "credentials not found" is an answer, not a failure.
 */
export async function credentialsFromHelper(helper: string, registry: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  const program = `docker-credential-${helper}`;
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new BasaltError('auth', `credential helper ${program} (configured for ${registry}) is not installed`, { hint: `install it, or remove "${helper}" from credHelpers/credsStore` }) : e),
    );
    child.on('close', (c) => resolve({ code: c ?? 1, stdout: out, stderr: err }));
    child.stdin.end(registry);
  });
  if (code !== 0) {
    const text = `${stdout}${stderr}`.trim();
    if (/credentials not found/i.test(text)) return undefined;
    throw new BasaltError('auth', `credential helper ${program} failed for ${registry}: ${text || `exit ${code}`}`, { hint: 'check the helper (or log in again)' });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new BasaltError('auth', `credential helper ${program} printed something that is not JSON for ${registry}`);
  }
  const { Username, Secret } = (doc ?? {}) as { Username?: unknown; Secret?: unknown };
  if (typeof Username !== 'string' || typeof Secret !== 'string') throw new BasaltError('auth', `credential helper ${program} answered without Username and Secret for ${registry}`);
  return Username === '<token>' ? { username: '', identityToken: Secret } : { username: Username, password: Secret };
}
