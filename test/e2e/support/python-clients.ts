import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * The Python MCP clients (official SDK, FastMCP) in the venv scripts/python-clients.sh creates, the same script
 * .ci/run calls. Preparing them here too lets the test run on a machine where the venv was never made; when the
 * packages cannot be installed the reason is returned so the test skips saying what is missing.
 */
const root = resolve(import.meta.dirname, '..', '..', '..');
const python = join(root, '.venv-clients', 'bin', 'python');
const driver = join(root, 'test', 'e2e', 'clients', 'python_client.py');

export function preparePythonClients(): { ready: true } | { ready: false; reason: string } {
  const setup = spawnSync('bash', [join(root, 'scripts', 'python-clients.sh')], { encoding: 'utf8', timeout: 300_000 });
  if (setup.status === 0 && existsSync(python)) return { ready: true };
  const said = `${setup.stderr ?? ''}${setup.stdout ?? ''}`.trim().split('\n').filter((line) => !line.startsWith('WARNING:')).slice(-3).join(' | ');
  return { ready: false, reason: `Python clients (mcp==2.3.0, fastmcp==4.0.10) are not installed: ${said || setup.error?.message || 'scripts/python-clients.sh failed'}` };
}

export interface PythonClientRun {
  /** Called with each authorization URL the client opens; returns the callback URL the browser reached. */
  authorize(url: URL): Promise<URL>;
  /** The official SDK reads the callback from stdin; FastMCP takes it on its own loopback server. */
  callbackOnStdin: boolean;
}

export async function runPythonClient(args: string[], run: PythonClientRun): Promise<Record<string, unknown>> {
  const child = spawn(python, [driver, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const errors: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => errors.push(chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', done));
  let result: Record<string, unknown> | undefined;
  for await (const line of createInterface({ input: child.stdout })) {
    const message = parseLine(line);
    if (message?.event === 'authorize') {
      const callback = await run.authorize(new URL(String(message.url)));
      if (run.callbackOnStdin) child.stdin.write(`${callback.href}\n`);
    } else if (message?.event === 'result') {
      result = message;
    }
  }
  const code = await exited;
  if (!result) throw new Error(`the Python client exited (${code}) without a result:\n${errors.join('').slice(-3000)}`);
  return result;
}

function parseLine(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
