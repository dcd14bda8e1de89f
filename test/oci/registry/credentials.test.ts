import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { authFileSearchPath, lookupCredentials, normaliseAuthKey } from '../../../src/oci/registry/credentials.js';
import { isBasaltError } from '../../../src/oci/errors.js';
import { withTempDir } from '../../harness/tools.js';

function entry(userpass: string): { auth: string } {
  return { auth: Buffer.from(userpass).toString('base64') };
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, JSON.stringify(value));
}

describe('credential lookup', () => {
  it('searches the files in containers/image order', () => {
    const env = { HOME: '/h', XDG_RUNTIME_DIR: '/run/user/7', REGISTRY_AUTH_FILE: '/r/auth.json' };
    assert.deepEqual(
      authFileSearchPath({ env, homeDir: '/h' }).map((p) => p.path),
      ['/r/auth.json', '/run/user/7/containers/auth.json', '/h/.config/containers/auth.json', '/h/.docker/config.json', '/h/.dockercfg'],
    );
    assert.equal(authFileSearchPath({ env, homeDir: '/h', authFile: '/explicit.json' })[0]?.path, '/explicit.json');
    assert.equal(authFileSearchPath({ env: { HOME: '/h', XDG_CONFIG_HOME: '/cfg' }, homeDir: '/h' })[1]?.path, '/cfg/containers/auth.json');
  });

  it('prefers --creds, then --authfile, then XDG runtime, XDG config, docker config, dockercfg', async () => {
    await withTempDir('creds', async (home) => {
      const env = { HOME: home, XDG_RUNTIME_DIR: join(home, 'run'), XDG_CONFIG_HOME: join(home, 'cfg') };
      const base = { env, homeDir: home };
      const host = 'reg.example:5000';
      const user = async (opts: object = {}): Promise<string | undefined> => (await lookupCredentials(host, 'ns/repo', { ...base, ...opts }))?.credentials.username;
      assert.equal(await user(), undefined);
      await writeFile(join(home, '.dockercfg'), JSON.stringify({ [`https://${host}`]: entry('legacy:p') }));
      assert.equal(await user(), 'legacy');
      await writeJson(join(home, '.docker/config.json'), { auths: { [host]: entry('docker:p') } });
      assert.equal(await user(), 'docker');
      await writeJson(join(home, 'cfg/containers/auth.json'), { auths: { [host]: entry('xdgconfig:p') } });
      assert.equal(await user(), 'xdgconfig');
      await writeJson(join(home, 'run/containers/auth.json'), { auths: { [host]: entry('runtime:p') } });
      assert.equal(await user(), 'runtime');
      const explicit = join(home, 'explicit.json');
      await writeJson(explicit, { auths: { [host]: entry('explicit:p') } });
      assert.equal(await user({ authFile: explicit }), 'explicit');
      assert.equal(await user({ env: { ...env, REGISTRY_AUTH_FILE: explicit } }), 'explicit');
      assert.equal(await user({ authFile: explicit, creds: 'cli:secret:with:colons' }), 'cli');
      const cli = await lookupCredentials(host, 'ns/repo', { ...base, creds: 'cli:secret:with:colons' });
      assert.deepEqual(cli?.credentials, { username: 'cli', password: 'secret:with:colons' });
      // A file without a matching key does not stop the search.
      await writeJson(explicit, { auths: { 'elsewhere.example': entry('no:p') } });
      assert.equal(await user({ authFile: explicit }), 'runtime');
    });
  });

  it('matches host/namespace keys, most specific first, and legacy URL keys', async () => {
    await withTempDir('creds', async (home) => {
      const file = join(home, 'auth.json');
      await writeJson(file, {
        auths: {
          'reg.example': entry('host:p'),
          'reg.example/team': entry('team:p'),
          'reg.example/team/app': entry('app:p'),
          'https://index.docker.io/v1/': entry('hub:p'),
          'id.example': { auth: Buffer.from('u:').toString('base64'), identitytoken: 'refresh-me' },
        },
      });
      const opts = { authFile: file, env: { HOME: home }, homeDir: home };
      const u = async (reg: string, repo?: string): Promise<unknown> => (await lookupCredentials(reg, repo, opts))?.credentials;
      assert.deepEqual(await u('reg.example', 'team/app'), { username: 'app', password: 'p' });
      assert.deepEqual(await u('reg.example', 'team/other'), { username: 'team', password: 'p' });
      assert.deepEqual(await u('reg.example', 'solo'), { username: 'host', password: 'p' });
      assert.deepEqual(await u('docker.io', 'library/debian'), { username: 'hub', password: 'p' });
      assert.deepEqual(await u('id.example', 'x'), { username: 'u', identityToken: 'refresh-me' });
      assert.equal(normaliseAuthKey('http://reg.example:5000/v2/'), 'reg.example:5000');
    });
  });

  it('reports a malformed auth file naming it', async () => {
    await withTempDir('creds', async (home) => {
      const file = join(home, 'auth.json');
      await writeFile(file, '{not json');
      await assert.rejects(lookupCredentials('r.example', 'x', { authFile: file, env: { HOME: home }, homeDir: home }), (e: unknown) => isBasaltError(e, 'invalid') && (e as Error).message.includes(file));
    });
  });
});
