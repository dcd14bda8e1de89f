import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isBasaltError } from '../../../src/oci/errors.js';
import { dockerTransport, login, logout, RegistryClient } from '../../../src/oci/registry/transport.js';
import { parseChallenges } from '../../../src/oci/registry/auth.js';
import { startRegistry, type TestRegistry } from '../../harness/registry.js';
import { tempDir } from '../../harness/tools.js';
import { makeImage, pushImage, readAll, testOptions } from './helpers.js';

function authJson(entries: Record<string, string>): string {
  const auths: Record<string, { auth: string }> = {};
  for (const [k, v] of Object.entries(entries)) auths[k] = { auth: Buffer.from(v).toString('base64') };
  return JSON.stringify({ auths });
}

/** Options that find no credentials on the host (HOME and XDG dirs point into an empty temp dir). */
async function isolated(extra: Parameters<typeof testOptions>[0] = {}): Promise<ReturnType<typeof testOptions> & { home: string }> {
  const home = await tempDir('home');
  const env = { HOME: home, XDG_RUNTIME_DIR: join(home, 'run'), XDG_CONFIG_HOME: join(home, 'config') };
  return { ...testOptions({ env, homeDir: home, ...extra }), home } as ReturnType<typeof testOptions> & { home: string };
}

describe('challenge parsing', () => {
  it('parses bearer and basic challenges with quoted values', () => {
    const c = parseChallenges(['Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="insufficient_scope"']);
    assert.deepEqual(c, [{ scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push', error: 'insufficient_scope' } }]);
    assert.deepEqual(parseChallenges(['Basic realm="x \\"y\\"", Bearer realm=r']), [
      { scheme: 'basic', params: { realm: 'x "y"' } },
      { scheme: 'bearer', params: { realm: 'r' } },
    ]);
  });
});

for (const flavour of ['htpasswd', 'token'] as const) {
  describe(`${flavour} registry`, () => {
    let reg: TestRegistry;
    before(async () => {
      reg = await startRegistry({ flavour, users: { alice: 'wonderland', bob: 'builder' } });
    });
    after(async () => {
      await reg.stop();
    });

    it('refuses anonymous access with a message saying how to log in', async () => {
      const opts = await isolated();
      await assert.rejects(dockerTransport.openSource(`${reg.host}/private/img:v1`, opts), (e: unknown) => {
        assert.ok(isBasaltError(e, 'auth'), String(e));
        assert.match((e as Error).message, new RegExp(`authentication required for ${reg.host}/private/img`));
        assert.match((e as { hint?: string }).hint ?? '', new RegExp(`basalt image login ${reg.host}.*--creds`));
        return true;
      });
    });

    it('refuses wrong credentials', async () => {
      const opts = await isolated({ creds: 'alice:wrong' });
      await assert.rejects(dockerTransport.openSource(`${reg.host}/private/img:v1`, opts), (e: unknown) => {
        assert.ok(isBasaltError(e, 'auth'), String(e));
        assert.match((e as Error).message, /authentication failed/);
        return true;
      });
    });

    it('pushes and pulls with --creds, and with an auth file', async () => {
      const img = makeImage([5000, 100_000]);
      const opts = await isolated({ creds: 'alice:wonderland', chunkSize: 32 * 1024, monolithicMaxBytes: 8 * 1024 });
      await pushImage(await dockerTransport.openDestination(`${reg.host}/private/img:v1`, opts), img);
      const authFile = join(opts.home, 'auth.json');
      await writeFile(authFile, authJson({ [reg.host]: 'bob:builder' }));
      const pullOpts = await isolated({ authFile });
      const src = await dockerTransport.openSource(`${reg.host}/private/img:v1`, pullOpts);
      assert.deepEqual((await src.getManifest()).bytes, img.manifest.bytes);
      assert.deepEqual(await readAll(await src.getBlob(img.layerDescs[1]!)), img.layers[1]);
      const client = new RegistryClient(reg.host, pullOpts);
      assert.deepEqual(await client.listTags('private/img'), ['v1']);
      if (flavour === 'token') {
        const pushes = reg.tokenRequests.filter((r) => r.user === 'alice' && r.scopes.includes('repository:private/img:pull,push'));
        assert.ok(pushes.length >= 1, JSON.stringify(reg.tokenRequests));
        // Tokens are cached per scope: one push token for the whole image, not one per request.
        assert.ok(pushes.length <= 2, `expected cached push tokens, saw ${pushes.length} requests`);
        assert.ok(reg.tokenRequests.some((r) => r.user === 'bob' && r.scopes.includes('repository:private/img:pull')));
      }
    });

    it('mounts across repositories with pull scope on the source', async () => {
      const img = makeImage([3000]);
      const opts = await isolated({ creds: 'alice:wonderland' });
      await pushImage(await dockerTransport.openDestination(`${reg.host}/mnt/src:v1`, opts), img);
      const dest = await dockerTransport.openDestination(`${reg.host}/mnt/dst:v1`, opts);
      assert.equal(await dest.hasBlob(img.layerDescs[0]!, { registry: reg.host, repository: 'mnt/src' }), true);
      assert.ok(opts.messages.some((m) => m.includes('mounted blob')), opts.messages.join('\n'));
      if (flavour === 'token') {
        assert.ok(
          reg.tokenRequests.some((r) => r.scopes.includes('repository:mnt/dst:pull,push') && r.scopes.includes('repository:mnt/src:pull')),
          JSON.stringify(reg.tokenRequests.map((r) => r.scopes)),
        );
      }
    });

    it('login verifies credentials and writes auth.json (0600) keeping other entries; logout removes them', async () => {
      const opts = await isolated();
      const authFile = join(opts.home, 'login', 'auth.json');
      await assert.rejects(login(reg.host, 'alice', 'nope', { ...opts, authFile }), (e: unknown) => isBasaltError(e, 'auth'));
      await writeFile(join(opts.home, 'x'), '');
      const { mkdir } = await import('node:fs/promises');
      await mkdir(join(opts.home, 'login'), { recursive: true });
      await writeFile(authFile, JSON.stringify({ auths: { 'other.example': { auth: 'eDp5' } }, credHelpers: { 'z.example': 'pass' } }));
      const written = await login(reg.host, 'alice', 'wonderland', { ...opts, authFile });
      assert.equal(written, authFile);
      const doc = JSON.parse(await readFile(authFile, 'utf8')) as { auths: Record<string, { auth: string }>; credHelpers: unknown };
      assert.equal(Buffer.from(doc.auths[reg.host]!.auth, 'base64').toString(), 'alice:wonderland');
      assert.equal(doc.auths['other.example']!.auth, 'eDp5');
      assert.deepEqual(doc.credHelpers, { 'z.example': 'pass' });
      assert.equal((await stat(authFile)).mode & 0o777, 0o600);
      // The stored credentials now work.
      const img = makeImage([10]);
      await pushImage(await dockerTransport.openDestination(`${reg.host}/login/img:v1`, { ...opts, authFile }), img);
      await logout(reg.host, { ...opts, authFile });
      const after = JSON.parse(await readFile(authFile, 'utf8')) as { auths: Record<string, unknown> };
      assert.deepEqual(Object.keys(after.auths), ['other.example']);
      await assert.rejects(logout(reg.host, { ...opts, authFile }), (e: unknown) => isBasaltError(e, 'not-found'));
      await logout({ all: true }, { ...opts, authFile });
      assert.deepEqual((JSON.parse(await readFile(authFile, 'utf8')) as { auths: object }).auths, {});
    });
  });
}

describe('token registry specifics', () => {
  let reg: TestRegistry;
  before(async () => {
    // bob may only pull.
    reg = await startRegistry({ flavour: 'token', users: { alice: 'wonderland', bob: 'builder' }, grant: (user, _repo, requested) => (user === 'alice' ? requested : user === 'bob' ? requested.filter((a) => a === 'pull') : []), tokenLifetime: 2 });
  });
  after(async () => {
    await reg.stop();
  });

  it('a pull-only account cannot push, with an auth error naming the repository', async () => {
    const opts = await isolated({ creds: 'bob:builder' });
    const dest = await dockerTransport.openDestination(`${reg.host}/ro/img:v1`, opts);
    await assert.rejects(pushImage(dest, makeImage([10])), (e: unknown) => {
      assert.ok(isBasaltError(e, 'auth'), String(e));
      assert.match((e as Error).message, new RegExp(`${reg.host}/ro/img`));
      return true;
    });
  });

  it('refreshes expired tokens', async () => {
    const opts = await isolated({ creds: 'alice:wonderland' });
    const img = makeImage([10]);
    await pushImage(await dockerTransport.openDestination(`${reg.host}/exp/img:v1`, opts), img);
    const src = await dockerTransport.openSource(`${reg.host}/exp/img:v1`, opts);
    const before = reg.tokenRequests.length;
    await new Promise((r) => setTimeout(r, 2200));
    assert.deepEqual(await readAll(await src.getBlob(img.layerDescs[0]!)), img.layers[0]);
    assert.ok(reg.tokenRequests.length > before, 'a new token was fetched after expiry');
  });
});
