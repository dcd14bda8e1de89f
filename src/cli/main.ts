import { Command, CommanderError } from 'commander';
import { imageCommand } from './image.js';
import { loginCommand, logoutCommand } from './login.js';
import { vmCommand } from './media.js';
import { isoCommand } from './iso.js';
import { baseCommand, buildCommand, containerCommand } from './build.js';
import { diskCommand, installCommand, statusCommand } from './deploy.js';
import { aciCommand } from './aci.js';
import { keygenCommand, policyCommand, signCommand, verifyCommand } from './trust.js';
import { updateCommands } from './update.js';
import { healthCommand } from './health.js';
import { kickstartCommand } from './kickstart.js';
import { EXIT_CODE_HELP, reportError } from './output.js';
// Inlined by the bundler; tsc copies package.json beside the compiled tree.
import pkg from '../../package.json' with { type: 'json' };

function packageVersion(): string {
  return pkg.version;
}

/** Applies one setting to every command in the tree (commander sets these per command). */
function configureTree(cmd: Command): void {
  cmd.exitOverride();
  cmd.showHelpAfterError('(run with --help for usage)');
  for (const sub of cmd.commands) configureTree(sub);
}

export function buildProgram(): Command {
  const program = new Command('basalt')
    .description('Image-based Linux from OCI images: build, copy, sign, boot, install and update atomically.')
    .version(packageVersion(), '-v, --version', 'print basalt\'s version')
    .option('--debug', 'print causes and stack traces of errors');
  program.addCommand(imageCommand());
  program.addCommand(loginCommand());
  program.addCommand(logoutCommand());
  program.addCommand(baseCommand());
  program.addCommand(buildCommand());
  program.addCommand(containerCommand());
  program.addCommand(installCommand().addCommand(kickstartCommand()));
  program.addCommand(statusCommand());
  program.addCommand(diskCommand());
  program.addCommand(vmCommand());
  program.addCommand(isoCommand());
  program.addCommand(aciCommand());
  for (const c of [keygenCommand(), signCommand(), verifyCommand(), policyCommand()]) program.addCommand(c);
  for (const c of updateCommands()) program.addCommand(c, c.name() === 'internal' ? { hidden: true } : {});
  program.addCommand(healthCommand());
  program.addHelpText('after', EXIT_CODE_HELP);
  configureTree(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version exit 0; parse errors are usage errors (commander already printed them).
      return e.exitCode === 0 ? 0 : 2;
    }
    return reportError(e, process.argv.includes('--debug'));
  }
}

process.on('SIGINT', () => process.exit(130));
// A closed pipe (basalt ... | head) is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
});
main(process.argv).then((code) => {
  process.exitCode = code;
});
