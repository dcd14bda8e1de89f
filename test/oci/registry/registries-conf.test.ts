import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isBasaltError } from '../../../src/oci/errors.js';
import { formatReference, parseReference } from '../../../src/oci/reference.js';
import { loadRegistriesConf, pullSources, resolveName } from '../../../src/oci/registry/registries-conf.js';
import { dockerTransport } from '../../../src/oci/registry/transport.js';
import type { RegistryOptions } from '../../../src/oci/registry/options.js';

const withOptions = (o: RegistryOptions): RegistryOptions => o;
import { startRegistry, type TestRegistry } from '../../harness/registry.js';
import { tempDir, withTempDir } from '../../harness/tools.js';
import { FAST_RETRY, makeImage, pushImage, testOptions } from './helpers.js';

async function confFiles(main: string, dropIns: Record<string, string> = {}): Promise<string> {
  const dir = await tempDir('regconf');
  const path = join(dir, 'registries.conf');
  await writeFile(path, main);
  if (Object.keys(dropIns).length > 0) {
    await mkdir(`${path}.d`);
    for (const [name, text] of Object.entries(dropIns)) await writeFile(join(`${path}.d`, name), text);
  }
  return path;
}

describe('registries.conf parsing', () => {
  it('merges drop-ins in order, later wins, aliases from shortnames files', async () => {
    const path = await confFiles(
      `unqualified-search-registries = ["a.example", "b.example"]
short-name-mode = "enforcing"
[[registry]]
prefix = "a.example/team"
location = "mirror.example/a-team"
insecure = true
[[registry.mirror]]
location = "m1.example/team"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "m2.example/team"
insecure = true
[[registry]]
location = "blocked.example"
blocked = true
[[registry]]
prefix = "*.wild.example"
insecure = true
`,
      {
        '10-search.conf': 'unqualified-search-registries = ["only.example"]\n',
        '20-override.conf': '[[registry]]\nlocation = "blocked.example"\nblocked = false\ninsecure = true\n',
        '000-shortnames.conf': '[aliases]\n"tool" = "quay.example/tools/tool"\n',
        'ignored.txt': 'not = toml = at all',
      },
    );
    const conf = await loadRegistriesConf({ path });
    assert.deepEqual(conf.unqualifiedSearchRegistries, ['only.example']);
    assert.equal(conf.shortNameMode, 'enforcing');
    assert.equal(conf.aliases.get('tool'), 'quay.example/tools/tool');
    assert.equal(conf.files.length, 4);

    const tagged = pullSources(conf, parseReference('a.example/team/app:1'));
    assert.deepEqual(tagged.map((s) => [formatReference(s.reference), s.insecure, s.mirror]), [
      ['m2.example/team/app:1', true, true],
      ['mirror.example/a-team/app:1', true, false],
    ]);
    const d = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual(pullSources(conf, parseReference(`a.example/team/app@${d}`)).map((s) => formatReference(s.reference)), [`m1.example/team/app@${d}`, `m2.example/team/app@${d}`, `mirror.example/a-team/app@${d}`]);
    // Prefix must end at a separator: a.example/teamwork is not under a.example/team.
    assert.deepEqual(pullSources(conf, parseReference('a.example/teamwork/app:1')).map((s) => formatReference(s.reference)), ['a.example/teamwork/app:1']);
    // The drop-in replaced the blocked entry.
    assert.equal(pullSources(conf, parseReference('blocked.example/x:1'))[0]?.insecure, true);
    assert.equal(pullSources(conf, parseReference('reg.wild.example/x:1'))[0]?.insecure, true);
    assert.equal(pullSources(conf, parseReference('wild.example/x:1'))[0]?.insecure, false);

    assert.equal(formatReference(resolveName('tool:2', conf)), 'quay.example/tools/tool:2');
    assert.equal(formatReference(resolveName('app:3', conf)), 'only.example/app:3');
    assert.equal(formatReference(resolveName('localhost:5000/x', conf)), 'localhost:5000/x');
  });

  it('refuses ambiguous short names instead of guessing', async () => {
    const conf = await loadRegistriesConf({ path: await confFiles('unqualified-search-registries = ["a.example", "b.example"]\n') });
    assert.throws(() => resolveName('app', conf), (e: unknown) => isBasaltError(e, 'usage') && /fully-qualified/.test((e as { hint?: string }).hint ?? '') && /a\.example, b\.example/.test((e as Error).message));
    const none = await loadRegistriesConf({ path: await confFiles('') });
    assert.throws(() => resolveName('app', none), /no unqualified-search-registries/);
  });

  it('honours CONTAINERS_REGISTRIES_CONF and reports bad files by name', async () => {
    const path = await confFiles('[[registry]]\nlocation = "x.example"\ninsecure = "yes"\n');
    await assert.rejects(loadRegistriesConf({ env: { CONTAINERS_REGISTRIES_CONF: path } }), (e: unknown) => isBasaltError(e, 'invalid') && (e as Error).message.includes(path) && /insecure must be true or false/.test((e as Error).message));
    const v1 = await confFiles('[registries.search]\nregistries = ["x"]\n');
    await assert.rejects(loadRegistriesConf({ path: v1 }), /version 1 format/);
  });
});

describe('registries.conf against real registries', () => {
  let primary: TestRegistry;
  let mirror: TestRegistry;
  before(async () => {
    [primary, mirror] = await Promise.all([startRegistry(), startRegistry()]);
  });
  after(async () => {
    await Promise.all([primary.stop(), mirror.stop()]);
  });

  it('insecure = true allows plain http without --tls-verify=false; without it, https is required', async () => {
    const img = makeImage([100]);
    await pushImage(await dockerTransport.openDestination(`${primary.host}/conf/img:v1`, testOptions()), img);
    const secure = await confFiles('');
    await assert.rejects(dockerTransport.openSource(`${primary.host}/conf/img:v1`, withOptions({ registriesConf: secure, retry: FAST_RETRY })), (e: unknown) => isBasaltError(e, 'network') && /plain-http/.test((e as Error).message));
    const insecure = await confFiles(`[[registry]]\nlocation = "${primary.host}"\ninsecure = true\n`);
    const src = await dockerTransport.openSource(`${primary.host}/conf/img:v1`, withOptions({ registriesConf: insecure, retry: FAST_RETRY }));
    assert.equal((await src.getManifest()).digest, img.manifest.digest);
    // An explicit --tls-verify=true wins over the file.
    await assert.rejects(dockerTransport.openSource(`${primary.host}/conf/img:v1`, withOptions({ registriesConf: insecure, tlsVerify: true, retry: FAST_RETRY })), (e: unknown) => isBasaltError(e, 'network'));
  });

  it('pulls from a mirror that has the image first, falls back to the primary, and refuses blocked registries', async () => {
    const onBoth = makeImage([100]);
    const onlyPrimary = makeImage([100]);
    const mirrorCopy = makeImage([100]); // Different content under the same tag proves which one served it.
    await pushImage(await dockerTransport.openDestination(`${primary.host}/mirrored/img:v1`, testOptions()), onBoth);
    await pushImage(await dockerTransport.openDestination(`${mirror.host}/cache/mirrored/img:v1`, testOptions()), mirrorCopy);
    await pushImage(await dockerTransport.openDestination(`${primary.host}/mirrored/img:v2`, testOptions()), onlyPrimary);
    const path = await confFiles(`[[registry]]
location = "${primary.host}"
insecure = true
[[registry.mirror]]
location = "${mirror.host}/cache"
insecure = true
[[registry]]
location = "${mirror.host}/forbidden"
blocked = true
`);
    const messages: string[] = [];
    const opts = withOptions({ registriesConf: path, retry: FAST_RETRY, log: (m: string) => messages.push(m) });
    const fromMirror = await dockerTransport.openSource(`${primary.host}/mirrored/img:v1`, opts);
    assert.equal((await fromMirror.getManifest()).digest, mirrorCopy.manifest.digest);
    assert.deepEqual(fromMirror.location, { registry: mirror.host, repository: 'cache/mirrored/img' });
    assert.equal(fromMirror.name, `docker://${primary.host}/mirrored/img:v1`);
    const fallback = await dockerTransport.openSource(`${primary.host}/mirrored/img:v2`, opts);
    assert.equal((await fallback.getManifest()).digest, onlyPrimary.manifest.digest);
    assert.ok(messages.some((m) => m.includes('failed') && m.includes(mirror.host)), messages.join('\n'));

    await assert.rejects(dockerTransport.openSource(`${mirror.host}/forbidden/x:v1`, opts), (e: unknown) => {
      assert.ok(isBasaltError(e, 'denied'), String(e));
      assert.ok((e as Error).message.includes(path), (e as Error).message);
      return true;
    });
    await assert.rejects(dockerTransport.openDestination(`${mirror.host}/forbidden/x:v1`, opts), (e: unknown) => isBasaltError(e, 'denied'));
  });

  it('resolves short-name aliases and a single search registry', async () => {
    const img = makeImage([100]);
    await pushImage(await dockerTransport.openDestination(`${primary.host}/tools/hammer:v1`, testOptions()), img);
    await withTempDir('alias', async (dir) => {
      const path = join(dir, 'registries.conf');
      await writeFile(path, `unqualified-search-registries = ["${primary.host}"]\n[[registry]]\nlocation = "${primary.host}"\ninsecure = true\n`);
      await mkdir(`${path}.d`);
      await writeFile(join(`${path}.d`, 'shortnames.conf'), `[aliases]\n"hammer" = "${primary.host}/tools/hammer"\n`);
      const opts = withOptions({ registriesConf: path, retry: FAST_RETRY });
      const viaAlias = await dockerTransport.openSource('hammer:v1', opts);
      assert.equal((await viaAlias.getManifest()).digest, img.manifest.digest);
      const viaSearch = await dockerTransport.openSource('tools/hammer:v1', opts);
      assert.equal((await viaSearch.getManifest()).digest, img.manifest.digest);
    });
  });
});

describe('TLS registry', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry({ tls: true });
  });
  after(async () => {
    await reg.stop();
  });

  it('refuses an untrusted certificate, trusts the CA from --cert-dir, and --tls-verify=false skips verification', async () => {
    const conf = await confFiles('');
    const img = makeImage([50_000]);
    await assert.rejects(dockerTransport.openDestination(`${reg.host}/tls/img:v1`, withOptions({ registriesConf: conf, retry: FAST_RETRY })).then((d) => pushImage(d, img)), (e: unknown) => {
      assert.ok(isBasaltError(e, 'network'), String(e));
      assert.match((e as Error).message, /not trusted/);
      assert.match((e as { hint?: string }).hint ?? '', /certs\.d/);
      return true;
    });
    await pushImage(await dockerTransport.openDestination(`${reg.host}/tls/img:v1`, withOptions({ registriesConf: conf, retry: FAST_RETRY, certDir: reg.certDir! })), img);
    const src = await dockerTransport.openSource(`${reg.host}/tls/img:v1`, withOptions({ registriesConf: conf, retry: FAST_RETRY, tlsVerify: false }));
    assert.equal((await src.getManifest()).digest, img.manifest.digest);
  });
});

describe('registries.conf locations', () => {
  it("uses the user's ~/.config/containers/registries.conf instead of the system file, and reads both drop-in directories", async () => {
    const home = await tempDir('regconf-home');
    const user = join(home, '.config', 'containers');
    await mkdir(join(user, 'registries.conf.d'), { recursive: true });
    await writeFile(join(user, 'registries.conf'), 'unqualified-search-registries = ["user.example"]\n');
    await writeFile(join(user, 'registries.conf.d', '50-mirror.conf'), '[[registry]]\nlocation = "user-dropin.example"\ninsecure = true\n');
    const conf = await loadRegistriesConf({ env: { HOME: home } });
    assert.deepEqual(conf.unqualifiedSearchRegistries, ['user.example']);
    assert.equal(conf.files[0], join(user, 'registries.conf'));
    assert.ok(conf.registries.some((r) => r.prefix === 'user-dropin.example' && r.insecure));
    const xdg = await loadRegistriesConf({ env: { HOME: '/nonexistent', XDG_CONFIG_HOME: join(home, '.config') } });
    assert.deepEqual(xdg.unqualifiedSearchRegistries, ['user.example']);
    // An explicit file is not mixed with the user's drop-ins.
    const explicit = join(home, 'explicit.conf');
    await writeFile(explicit, '');
    const only = await loadRegistriesConf({ path: explicit, env: { HOME: home } });
    assert.ok(!only.registries.some((r) => r.prefix === 'user-dropin.example'));
  });
});
