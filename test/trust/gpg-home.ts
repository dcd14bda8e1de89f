import { execFileSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, run } from '../harness/tools.js';

/**
 * A throwaway gpg home in a test's temp dir, with real keys made by gpg. Its agent is told
 * to have no pinentry, so a key that needs a passphrase nobody gave fails at once instead
 * of waiting for a terminal.
 */
export interface GpgHome {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** Generates a signing key; returns its fingerprint (upper-case hex). */
  generateKey(userId: string, options?: { passphrase?: string; expire?: string; fakedTime?: string; algorithm?: string }): string;
  /** `gpg --export` of the keys, binary or armored. */
  exportKeys(fingerprints: string[], armor?: boolean): Buffer;
  gpg(args: string[], input?: string | Buffer): string;
  close(): void;
}

export async function makeGpgHome(parent: string, name = 'gnupg'): Promise<GpgHome> {
  requireTool('gpg');
  requireTool('gpgconf');
  const dir = join(parent, name);
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o700);
  await writeFile(join(dir, 'gpg-agent.conf'), 'pinentry-program /bin/false\n');
  const env = { ...process.env, GNUPGHOME: dir, LC_ALL: 'C' };
  const gpg = (args: string[], input?: string | Buffer): string => run('gpg', ['--batch', '--no-tty', '--homedir', dir, ...args], { env, ...(input !== undefined ? { input } : {}) });
  return {
    dir,
    env,
    gpg,
    generateKey(userId, options = {}) {
      const args = options.fakedTime !== undefined ? ['--faked-system-time', options.fakedTime] : [];
      args.push('--pinentry-mode', 'loopback', '--passphrase', options.passphrase ?? '');
      args.push('--quick-generate-key', userId, options.algorithm ?? 'ed25519', 'sign', options.expire ?? 'never');
      gpg(args);
      const listing = gpg(['--with-colons', '--list-keys', `=${userId}`]);
      const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(listing)?.[1];
      if (fpr === undefined) throw new Error(`gpg made no key for ${userId}:\n${listing}`);
      return fpr;
    },
    exportKeys(fingerprints, armor = false) {
      const out = execFileSync('gpg', ['--batch', '--homedir', dir, ...(armor ? ['--armor'] : []), '--export', ...fingerprints], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      if (out.length === 0) throw new Error(`gpg exported nothing for ${fingerprints.join(' ')}`);
      return out;
    },
    close() {
      // Ends the agent this home started (and nothing else).
      try {
        run('gpgconf', ['--homedir', dir, '--kill', 'gpg-agent'], { env });
      } catch {
        // No agent was started.
      }
    },
  };
}
