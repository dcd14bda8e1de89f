import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
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

  it('runs docker credential helpers: credHelpers per registry before entries, credsStore as the fallback', async () => {
    await withTempDir('credhelper', async (home) => {
      const bin = join(home, 'bin');
      await mkdir(bin);
      // A helper that logs its stdin and answers for one registry only, as docker's do.
      const helper = (name: string, user: string): string => `#!/bin/sh\nread server\necho "$server" >> ${home}/${name}.log\ncase "$server" in\n  reg.example:5000) printf '{"ServerURL":"%s","Username":"${user}","Secret":"s3cret"}' "$server" ;;\n  token.example) printf '{"ServerURL":"%s","Username":"<token>","Secret":"tok"}' "$server" ;;\n  broken.example) echo 'keychain locked' >&2; exit 1 ;;\n  *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n`;
      for (const [name, user] of [['pass', 'from-pass'], ['store', 'from-store']] as const) {
        await writeFile(join(bin, `docker-credential-${name}`), helper(name, user));
        await chmod(join(bin, `docker-credential-${name}`), 0o755);
      }
      const env = { HOME: home, PATH: `${bin}:${process.env.PATH ?? ''}` };
      const opts = { env, homeDir: home };
      const config = join(home, '.docker/config.json');
      await writeJson(config, { credHelpers: { 'reg.example:5000': 'pass', 'token.example': 'pass', 'broken.example': 'pass', 'missing.example': 'nothere' }, auths: { 'reg.example:5000': entry('file:p'), 'other.example': entry('file:p') } });
      const found = await lookupCredentials('reg.example:5000', 'ns/repo', opts);
      assert.deepEqual(found?.credentials, { username: 'from-pass', password: 's3cret' });
      assert.match(found?.source ?? '', /docker-credential-pass \(credHelpers in .*config\.json\)/);
      assert.deepEqual((await lookupCredentials('token.example', undefined, opts))?.credentials, { username: '', identityToken: 'tok' });
      assert.equal((await lookupCredentials('other.example', undefined, opts))?.credentials.username, 'file', 'no helper named: the entry');
      await assert.rejects(lookupCredentials('broken.example', undefined, opts), (e) => isBasaltError(e, 'auth') && /docker-credential-pass failed for broken\.example: keychain locked/.test((e as Error).message));
      await assert.rejects(lookupCredentials('missing.example', undefined, opts), (e) => isBasaltError(e, 'auth') && /docker-credential-nothere \(configured for missing\.example\) is not installed/.test((e as Error).message));
      await writeJson(config, { credsStore: 'store', auths: { 'other.example': entry('file:p') } });
      assert.equal((await lookupCredentials('reg.example:5000', undefined, opts))?.credentials.username, 'from-store');
      assert.equal((await lookupCredentials('other.example', undefined, opts))?.credentials.username, 'file', 'an entry wins over credsStore');
      assert.equal(await lookupCredentials('unknown.example', undefined, opts), undefined, '"not found" from the store is no credentials, not an error');
    });
  });
});
