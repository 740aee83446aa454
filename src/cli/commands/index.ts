import type { CliCommand } from '../command.ts';
import { auditTailCommand } from './audit.ts';
import { clientsListCommand, clientsPruneCommand, clientsRevokeCommand, clientsShowCommand } from './clients.ts';
import { configCheckCommand } from './config-check.ts';
import { doctorCommand } from './doctor.ts';
import { entraSetupCommand } from './entra.ts';
import { grantsListCommand, grantsRevokeCommand } from './grants.ts';
import { initCommand } from './init.ts';
import { keysListCommand, keysPruneCommand, keysRevokeCommand, keysRotateCommand } from './keys.ts';
import { startCommand } from './start.ts';
import { storePurgeExpiredCommand } from './store.ts';
import { toolsApproveCommand, toolsDiffCommand, toolsListCommand, toolsRejectCommand } from './tools.ts';
import { usersListCommand } from './users.ts';

/** Every `gatehouse` command, in the order `gatehouse --help` lists them. */
export const commands: readonly CliCommand[] = [
  startCommand,
  initCommand,
  configCheckCommand,
  doctorCommand,
  entraSetupCommand,
  clientsListCommand,
  clientsShowCommand,
  clientsRevokeCommand,
  clientsPruneCommand,
  grantsListCommand,
  grantsRevokeCommand,
  usersListCommand,
  toolsListCommand,
  toolsDiffCommand,
  toolsApproveCommand,
  toolsRejectCommand,
  auditTailCommand,
  keysListCommand,
  keysRotateCommand,
  keysPruneCommand,
  keysRevokeCommand,
  storePurgeExpiredCommand,
];
