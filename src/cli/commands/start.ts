import type { LevelWithSilent } from 'pino';
import { startGateway } from '../../app/start-gateway.ts';
import { CliUsageError, type CliCommand } from '../command.ts';

/**
 * `gatehouse start`: load the configuration, open the store, load the keys, mount every part on the server, listen,
 * and run until SIGTERM/SIGINT; SIGHUP reloads what can change without a restart (src/app/reload-config.ts). Without a config file this is the local demo (`npm start`). The assembly itself is
 * src/app/.
 */
const logLevels: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const startCommand: CliCommand = {
  path: ['start'],
  summary: 'Start the gateway (without --config: the local demo) and run until SIGTERM or Ctrl-C.',
  options: {
    config: { type: 'string', short: 'c', description: 'Config file (default: $GATEHOUSE_CONFIG, else the local demo).' },
    port: { type: 'string', short: 'p', description: 'Port to listen on, overriding server.port.' },
    'log-level': { type: 'string', description: `Log level: ${logLevels.join(', ')} (default: log.level from the config, info).` },
  },
  async run({ values, io }) {
    const logLevel = values['log-level'];
    if (logLevel !== undefined && !logLevels.includes(logLevel as LevelWithSilent)) {
      throw new CliUsageError(`--log-level must be one of ${logLevels.join(', ')} (got "${String(logLevel)}")`);
    }
    const running = await startGateway({
      file: typeof values.config === 'string' ? values.config : undefined,
      port: typeof values.port === 'string' ? values.port : undefined,
      logLevel: logLevel as LevelWithSilent | undefined,
      io,
      ownsProcessHeap: true,
    });
    return running.lifecycle.stopped;
  },
};
