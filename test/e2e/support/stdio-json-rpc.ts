import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * An MCP host's side of a stdio server (what Claude Desktop does with `mcp-remote`): newline-delimited JSON-RPC on
 * the child's stdin/stdout, requests matched to responses by id, stderr kept for failure messages.
 */
export interface StdioPeer {
  request(method: string, params?: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>>;
  notify(method: string, params?: Record<string, unknown>): void;
  /** What the child wrote to stderr (its log), for assertion messages. */
  stderr(): string;
  close(): Promise<void>;
}

export function spawnStdioPeer(command: string, args: string[], env: Record<string, string>): StdioPeer {
  const child: ChildProcessWithoutNullStreams = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const log: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => log.push(chunk.toString()));
  const pending = new Map<number, (message: Record<string, unknown>) => void>();
  createInterface({ input: child.stdout }).on('line', (line) => {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof message.id === 'number' && ('result' in message || 'error' in message)) pending.get(message.id)?.(message);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let nextId = 1;
  return {
    request(method, params = {}, timeoutMs = 60_000) {
      const id = nextId++;
      child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${method}: no answer within ${timeoutMs} ms; stderr:\n${log.join('').slice(-3000)}`)), timeoutMs);
        pending.set(id, (message) => {
          clearTimeout(timer);
          pending.delete(id);
          resolve(message);
        });
      });
    },
    notify(method, params = {}) {
      child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method, params })}\n`);
    },
    stderr: () => log.join(''),
    async close() {
      child.stdin.end();
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
