import type { CliCommand } from '../command.ts';
import { configCheckCommand } from './config-check.ts';
import { initCommand } from './init.ts';
import { keysListCommand, keysPruneCommand, keysRotateCommand } from './keys.ts';
import { startCommand } from './start.ts';

/** Every `gatehouse` command, in the order `gatehouse --help` lists them. */
export const commands: readonly CliCommand[] = [
  startCommand,
  initCommand,
  configCheckCommand,
  keysListCommand,
  keysRotateCommand,
  keysPruneCommand,
];
