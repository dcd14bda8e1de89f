import { Command } from 'commander';
import { forgetBadImage, readBadImages, rememberBadImage, BAD_IMAGES_FILE } from '../deploy/bad-images.js';
import { currentBootCounter, bootCountPath, espEntryStates } from '../deploy/bootcount.js';
import { ENTRIES_DIR, ENTRY_PREFIX } from '../deploy/bootentries.js';
import { directoryEsp } from '../deploy/esp-target.js';
import { afterFailure, HEALTH_DIRS, runHealthChecks } from '../deploy/health.js';
import { ESP_MOUNT, readHostStatus } from '../deploy/status.js';
import { runTool } from '../build/run-tool.js';
import { BasaltError } from '../oci/errors.js';
import { collect } from './common.js';
import { printFormatted, printJson, warn } from './output.js';

type Opts = Record<string, unknown>;

/** Whether the ESP holds a basalt entry other than the one this boot was counted under that is not out of tries. */
async function otherBootableEntry(espDir: string): Promise<boolean> {
  const current = await bootCountPath();
  const currentFile = current?.slice(Math.max(current.lastIndexOf('\\'), current.lastIndexOf('/')) + 1);
  const entries = await espEntryStates(directoryEsp(espDir), ENTRIES_DIR, ENTRY_PREFIX);
  return [...entries.values()].some((e) => e.file !== currentFile && e.state !== 'bad');
}

function checkCommand(): Command {
  return new Command('check')
    .description(`run the health checks (${HEALTH_DIRS.join(', ')}); on failure remember the booted image as bad and reboot while boot counting can still choose better`)
    .option('--no-reboot', 'never reboot (only report and remember)')
    .option('--dir <dir>', 'run the checks in this directory instead of the standard ones (repeatable; later ones override by name)', collect, [])
    .option('--esp <dir>', 'the ESP', ESP_MOUNT)
    .option('--json', 'print the results as JSON')
    .action(async (o: Opts) => {
      const dirs = o.dir as string[];
      const results = await runHealthChecks(dirs.length > 0 ? { dirs } : {});
      const failed = results.filter((r) => !r.ok);
      if (!o.json)
        for (const r of results) {
          const how = r.ok ? 'ok' : r.timedOut ? 'timed out' : `failed (${r.signal ? `signal ${r.signal}` : `exit ${String(r.exitCode)}`})`;
          process.stdout.write(`basalt-health: ${r.name}: ${how} (${r.seconds.toFixed(1)} s)\n`);
          if (!r.ok && r.output.trim()) process.stdout.write(`${r.output.trim().split('\n').map((l) => `basalt-health:   ${l}`).join('\n')}\n`);
        }
      let decision: 'reboot' | 'stay' | undefined;
      if (failed.length > 0) {
        const reason = `health check ${failed.map((r) => r.name).join(', ')} failed`;
        // Remembering is best effort: the reboot that rolls back matters more.
        try {
          const digest = (await readHostStatus()).status.booted?.image?.imageDigest;
          if (digest) await rememberBadImage(digest, reason);
          if (digest && !o.json) process.stdout.write(`basalt-health: remembered ${digest} as bad in ${BAD_IMAGES_FILE}\n`);
        } catch (e) {
          warn(`could not remember the booted image as bad: ${e instanceof Error ? e.message : String(e)}`);
        }
        decision = afterFailure(await currentBootCounter(), await otherBootableEntry(o.esp as string).catch(() => false));
        if (!o.json) process.stdout.write(decision === 'reboot' ? 'basalt-health: rebooting: boot counting picks the next entry\n' : 'basalt-health: not rebooting: no boot tries left and no other entry to boot; this boot stays unblessed\n');
      }
      if (o.json) printJson({ results, ...(decision ? { decision } : {}) });
      if (decision === 'reboot' && o.reboot !== false) await runTool('systemctl', ['reboot', '--no-block'], { what: 'rebooting after a failed health check', debianPackage: 'systemd' });
      // The exit status is what keeps boot-complete.target (and so the blessing) from happening.
      if (failed.length > 0)
        throw new BasaltError('tool', `health check ${failed.map((r) => `${r.name} (${r.timedOut ? 'timed out' : r.signal ? `signal ${r.signal}` : `exit ${String(r.exitCode)}`})`).join(', ')} failed`, { hint: 'see its output above or in `journalctl -u basalt-health`' });
    });
}

export function healthCommand(): Command {
  const health = new Command('health').description('health checks that decide whether a boot is good (automatic rollback)');
  health.addCommand(checkCommand());
  health.addCommand(
    new Command('bad-images')
      .description(`list the images that failed their health checks on this device (${BAD_IMAGES_FILE}); updates skip them`)
      .option('--json', 'print as JSON')
      .action(async (o: Opts) => {
        const list = await readBadImages();
        await printFormatted(list, o.json ? 'json' : 'human', () => (list.length ? list.map((b) => `${b.digest}  ${b.time}  ${b.reason}\n`).join('') : 'No images failed here.\n'));
      }),
  );
  health.addCommand(
    new Command('forget')
      .description('let an image that failed be staged again')
      .argument('<digest>', 'the image digest (sha256:…)')
      .action(async (digest: string) => {
        if (!(await forgetBadImage(digest))) warn(`${digest} was not in ${BAD_IMAGES_FILE}`);
      }),
  );
  return health;
}
