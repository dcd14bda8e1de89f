import { access } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where podman reads a containers configuration entry: the user's
 * $HOME/.config/containers/NAME when it exists, else /etc/containers/NAME.
 */
export async function containersConfigPath(name: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const user = join(env.HOME || homedir(), '.config', 'containers', name);
  return access(user).then(
    () => user,
    () => join('/etc/containers', name),
  );
}
