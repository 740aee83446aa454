import { createServer } from 'node:net';

/**
 * A port nothing listens on right now, on 127.0.0.1: for servers whose URL must be known before they start (a
 * public URL, an audience, a redirect URI). Tests use only these, so `npm test` runs beside a running demo.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}
