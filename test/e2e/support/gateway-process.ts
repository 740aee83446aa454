import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/**
 * One gateway as its own operating-system process, started exactly as an operator starts a replica:
 * `gatehouse start --config <file>`. Resolves once it prints its "listening" line; fails with what it printed if it
 * exits first or does not come up within the bound. stop() ends it (SIGTERM, then SIGKILL) and waits for the exit;
 * a last-resort `exit` hook kills it if the test process ends without calling stop().
 */
export interface GatewayProcess {
  /** `http://127.0.0.1:<port>` — where this replica listens (its issuer may be another replica's URL). */
  url: string;
  /** Everything it wrote to stdout and stderr, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

const cliMain = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
const maxOutput = 64 * 1024;

/** Environment without any `GATEHOUSE_*` override from the developer's shell, so only the file configures it. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('GATEHOUSE_')));
}

export async function startGatewayProcess(options: { configFile: string; config: Record<string, unknown>; port: number; startTimeoutMs?: number }): Promise<GatewayProcess> {
  const { configFile, port, startTimeoutMs = 45_000 } = options;
  await writeFile(configFile, stringify(options.config), { mode: 0o600 });
  const child: ChildProcess = spawn(process.execPath, [cliMain, 'start', '--config', configFile, '--log-level', 'warn'], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  let output = '';
  const record = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-maxOutput);
  };
  child.stderr?.on('data', record);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const forced = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(forced);
    }
    process.off('exit', killOnExit);
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway on port ${port} did not start within ${startTimeoutMs} ms:\n${output}`)), startTimeoutMs);
      child.stdout?.on('data', (chunk: Buffer) => {
        record(chunk);
        if (output.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`gateway on port ${port} exited (${code ?? signal}) while starting:\n${output}`));
      });
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, output: () => output, stop };
}
