import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { BasaltError } from '../oci/errors.js';
import { loginRegistry, logoutRegistry } from '../oci/registry/catalog.js';
import { boolOption } from './common.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function prompt(question: string, hidden: boolean): Promise<string> {
  if (!process.stdin.isTTY) throw new BasaltError('usage', `${question.trim()} needed but standard input is not a terminal`, { hint: 'pass --username and --password-stdin' });
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (hidden) (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
    if (s.startsWith(question)) process.stderr.write(question);
  };
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    rl.close();
    if (hidden) process.stderr.write('\n');
  }
}

export function loginCommand(): Command {
  return new Command('login')
    .description('log in to a registry; credentials go to containers\' auth.json (podman and skopeo read them too)')
    .argument('<registry>', 'HOST[:PORT]')
    .option('-u, --username <user>', 'user name')
    .option('-p, --password <password>', 'password (visible in the process list: prefer --password-stdin)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--authfile <file>', 'auth file to write (default: containers\' auth.json)')
    .option('--cert-dir <dir>', 'certificates for the registry')
    .addOption(boolOption('--tls-verify [bool]', 'require HTTPS and verify certificates'))
    .action(async (registry: string, o: Record<string, unknown>) => {
      const username = (o.username as string | undefined) ?? (await prompt('Username: ', false));
      let password = o.password as string | undefined;
      if (o.passwordStdin) password = await readStdin();
      password ??= await prompt('Password: ', true);
      const file = await loginRegistry(registry, username, password, {
        ...(o.authfile ? { authFile: o.authfile as string } : {}),
        ...(o.certDir ? { certDir: o.certDir as string } : {}),
        ...(typeof o.tlsVerify === 'boolean' ? { tlsVerify: o.tlsVerify } : {}),
      });
      process.stdout.write(`Login Succeeded! (credentials in ${file})\n`);
    });
}

export function logoutCommand(): Command {
  return new Command('logout')
    .description('remove a registry\'s credentials from the auth file')
    .argument('[registry]', 'HOST[:PORT]')
    .option('-a, --all', 'remove every registry\'s credentials')
    .option('--authfile <file>', 'auth file (default: containers\' auth.json)')
    .action(async (registry: string | undefined, o: Record<string, unknown>) => {
      if (!registry && !o.all) throw new BasaltError('usage', 'logout needs a registry or --all');
      await logoutRegistry(o.all ? { all: true } : (registry as string), o.authfile ? { authFile: o.authfile as string } : {});
      process.stdout.write(o.all ? 'Removed login credentials for all registries\n' : `Removed login credentials for ${registry}\n`);
    });
}
