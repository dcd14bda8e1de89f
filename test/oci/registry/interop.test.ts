import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { digestOf } from '../../../src/oci/digest.js';
import { parseConfig, parseManifest } from '../../../src/oci/manifest.js';
import { dockerTransport, login } from '../../../src/oci/registry/transport.js';
import { startRegistry, type TestRegistry } from '../../harness/registry.js';
import { execFile } from 'node:child_process';
import { requireTool, run, tempDir } from '../../harness/tools.js';

/**
 * Runs a program without blocking the event loop: the token issuer lives in this process,
 * so a synchronous exec of podman would deadlock waiting for a token.
 */
function runAsync(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr}${stdout}`));
      else resolve(stdout);
    });
    child.stdin?.end();
  });
}
import { makeImage, pushImage, readAll, testOptions } from './helpers.js';

/**
 * Interop with podman and skopeo against the token-auth registry: they log in through the
 * test token issuer, push and pull; basalt reads what podman pushed with the auth file
 * podman wrote, and skopeo uses the auth file basalt wrote.
 */
describe('interop with podman and skopeo (token auth registry)', () => {
  let reg: TestRegistry;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let podmanArgs: string[];
  before(async () => {
    requireTool('podman');
    requireTool('skopeo');
    reg = await startRegistry({ flavour: 'token', users: { alice: 'wonderland', bob: 'builder' } });
    dir = await tempDir('interop');
    // podman needs this containers.conf on this machine (see ENVIRONMENT.md); an empty
    // registries.conf keeps the host's configuration out of the test.
    await writeFile(join(dir, 'containers.conf'), '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n');
    await writeFile(join(dir, 'registries.conf'), '');
    env = { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf'), CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'), REGISTRY_AUTH_FILE: join(dir, 'unused-auth.json') };
    podmanArgs = ['--root', join(dir, 'storage'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs'];
  });
  after(async () => {
    await reg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('podman login/push and skopeo login/copy work against the token issuer; basalt reads the result', async () => {
    const rootfs = join(dir, 'rootfs');
    await mkdir(rootfs);
    await writeFile(join(rootfs, 'hello.txt'), 'hello from basalt interop\n');
    run('tar', ['-C', rootfs, '-cf', join(dir, 'rootfs.tar'), '.']);
    await runAsync('podman', [...podmanArgs, 'import', join(dir, 'rootfs.tar'), 'localhost/basalt-interop:v1'], env);

    const podmanAuth = join(dir, 'podman-auth.json');
    await assert.rejects(runAsync('podman', [...podmanArgs, 'login', '--tls-verify=false', '--authfile', podmanAuth, '-u', 'alice', '-p', 'bad', reg.host], env), /401|unauthorized|invalid username/i);
    await runAsync('podman', [...podmanArgs, 'login', '--tls-verify=false', '--authfile', podmanAuth, '-u', 'alice', '-p', 'wonderland', reg.host], env);
    await runAsync('podman', [...podmanArgs, 'push', '--tls-verify=false', '--authfile', podmanAuth, 'localhost/basalt-interop:v1', `docker://${reg.host}/interop/img:v1`], env);
    assert.ok(reg.tokenRequests.some((r) => r.user === 'alice' && r.scopes.some((s) => s.startsWith('repository:interop/img:') && s.includes('push'))), JSON.stringify(reg.tokenRequests));

    const skopeoAuth = join(dir, 'skopeo-auth.json');
    await runAsync('skopeo', ['login', '--tls-verify=false', '--authfile', skopeoAuth, '-u', 'bob', '-p', 'builder', reg.host], env);
    await runAsync('skopeo', ['copy', '--src-tls-verify=false', '--authfile', skopeoAuth, `docker://${reg.host}/interop/img:v1`, `oci:${join(dir, 'oci')}:v1`], env);
    const index = JSON.parse(await readFile(join(dir, 'oci', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.equal(index.manifests.length, 1);

    await runAsync('podman', [...podmanArgs, 'rmi', 'localhost/basalt-interop:v1'], env);
    await runAsync('podman', [...podmanArgs, 'pull', '--tls-verify=false', '--authfile', podmanAuth, `${reg.host}/interop/img:v1`], env);

    // basalt reads the image podman pushed, with the credentials podman stored.
    const src = await dockerTransport.openSource(`${reg.host}/interop/img:v1`, testOptions({ authFile: podmanAuth }));
    const top = await src.getManifest();
    assert.equal(top.digest, index.manifests[0]?.digest, 'skopeo and basalt see the same manifest');
    const parsed = parseManifest(top.bytes, top.mediaType, src.name);
    assert.equal(parsed.kind, 'image');
    if (parsed.kind !== 'image') return;
    const configBytes = await readAll(await src.getBlob(parsed.manifest.config));
    assert.equal(digestOf(configBytes), parsed.manifest.config.digest);
    assert.equal(parseConfig(configBytes, 'config').rootfs.diff_ids.length, 1);
    for (const l of parsed.manifest.layers) assert.equal(digestOf(await readAll(await src.getBlob(l))), l.digest);
  });

  it('skopeo uses the auth file basalt login wrote and reads what basalt pushed', async () => {
    const ourAuth = join(dir, 'basalt-auth.json');
    await login(reg.host, 'alice', 'wonderland', testOptions({ authFile: ourAuth }));
    const img = makeImage([2000]);
    await pushImage(await dockerTransport.openDestination(`${reg.host}/interop/ours:v1`, testOptions({ authFile: ourAuth })), img);
    const raw = await runAsync('skopeo', ['inspect', '--raw', '--tls-verify=false', '--authfile', ourAuth, `docker://${reg.host}/interop/ours:v1`], env);
    assert.equal(digestOf(Buffer.from(raw)), img.manifest.digest);
    const tags = JSON.parse(await runAsync('skopeo', ['list-tags', '--tls-verify=false', '--authfile', ourAuth, `docker://${reg.host}/interop/ours`], env)) as { Tags: string[] };
    assert.deepEqual(tags.Tags, ['v1']);
  });
});
