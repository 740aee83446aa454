import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { generate } from 'selfsigned';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';

export interface RedisServerOptions {
  /** Sets `requirepass`; the URL then carries it. */
  password?: string;
  /** Serve TLS only, with a fresh self-signed certificate for 127.0.0.1; the URL is then `rediss://`. */
  tls?: boolean;
}

export interface RedisServer {
  /** `redis://[:password@]127.0.0.1:port` (`rediss://` with `tls`) */
  url: string;
  port: number;
  /** With `tls`: the server's self-signed certificate (PEM), to pass as the client's `ca`. */
  ca?: string;
  /** Stops the server (SIGTERM, waits for exit). Calling it twice is fine; restart() brings it back. */
  stop(): Promise<void>;
  /** Stops it if running and starts it again on the same port and password; no data survives (no persistence). */
  restart(): Promise<void>;
  /** SIGSTOP: the server keeps its connections but answers nothing (a hung host, a long GC pause) until thaw(). */
  freeze(): void;
  /** SIGCONT after freeze(); the queued commands are answered. */
  thaw(): void;
}

/**
 * A real, throw-away `redis-server` for tests: loopback only, a free port, no persistence, its own temp dir. It is
 * killed on stop() and, as a last resort, when the test process exits, so no test leaves a server behind.
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const { password, tls = false } = options;
  const certificate = tls ? await selfSignedCertificate() : undefined;
  const binary = redisServerBinary();
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;

  const killOnExit = (): void => {
    child?.kill('SIGCONT');
    child?.kill('SIGKILL');
  };

  const launch = async (): Promise<void> => {
    await mkdir(dir, { recursive: true });
    process.on('exit', killOnExit);
    const args = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    if (certificate) {
      await writeFile(join(dir, 'cert.pem'), certificate.cert);
      await writeFile(join(dir, 'key.pem'), certificate.key, { mode: 0o600 });
      args.push('--port', '0', '--tls-port', String(port), '--tls-auth-clients', 'no');
      args.push('--tls-cert-file', join(dir, 'cert.pem'), '--tls-key-file', join(dir, 'key.pem'));
    } else {
      args.push('--port', String(port));
    }
    args.push('--dir', dir, '--daemonize', 'no', '--loglevel', 'warning', '--protected-mode', 'no');
    if (password !== undefined) args.push('--requirepass', password);
    const started = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = started;
    let stderr = '';
    started.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<never>((_, reject) => {
      started.once('exit', (code) => reject(new Error(`redis-server exited (${code}) while starting: ${stderr}`)));
      started.once('error', reject);
    });
    exited.catch(() => {});
    await Promise.race([waitUntilAnswering(port, tls), exited]);
  };

  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running && running.exitCode === null && running.signalCode === null) {
      const exit = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      running.kill('SIGCONT'); // a frozen server handles SIGTERM only once it runs again
      running.kill('SIGTERM');
      await exit;
    }
    process.off('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
  };

  await launch();
  const auth = password === undefined ? '' : `:${encodeURIComponent(password)}@`;
  return {
    url: `${tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`,
    port,
    ...(certificate ? { ca: certificate.cert } : {}),
    stop,
    restart: async () => {
      await stop();
      await launch();
    },
    freeze: () => {
      child?.kill('SIGSTOP');
    },
    thaw: () => {
      child?.kill('SIGCONT');
    },
  };
}

function redisServerBinary(): string {
  if (existsSync('/usr/bin/redis-server')) return '/usr/bin/redis-server';
  return 'redis-server';
}


async function selfSignedCertificate(): Promise<{ cert: string; key: string }> {
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  return { cert: pems.cert, key: pems.private };
}

/** Polls with a raw PING until the server replies (PONG, or NOAUTH when it wants a password). */
async function waitUntilAnswering(port: number, tls: boolean): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    if (await answersPing(port, tls)) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`redis-server on port ${port} did not answer`);
}

function answersPing(port: number, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    // Readiness only: the certificate is checked by the client under test, not by this probe.
    const socket: Socket = tls
      ? connectTls({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => socket.write('PING\r\n'))
      : createConnection({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
    socket.setTimeout(1000);
    socket.once('data', (data) => {
      socket.destroy();
      resolve(/^(\+PONG|-NOAUTH)/.test(data.toString()));
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}
