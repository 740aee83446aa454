import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';

/**
 * A transparent HTTP front for the local identity provider that records every grant presented at its token endpoint.
 * The IdP is started with this proxy's URL as its issuer, so discovery, the sign-in pages, the JWKS and the
 * workload-identity issuer all resolve through here and the issuer the gateways validate is byte-identical; only
 * `POST /token` is buffered (to read `grant_type` and the subject), everything else is piped through untouched.
 */
export interface TokenGrant {
  grantType: string;
  status: number;
  /**
   * Whose tokens the grant was about: for an on-behalf-of grant the `sub` of the presented assertion, for the other
   * grants the `sub` of the access token the IdP answered with (a refresh request carries an opaque token only).
   */
  subject?: string;
}

export interface CountingIdpProxy {
  /** `http://localhost:<port>` — pass it to the IdP as its issuer. */
  url: string;
  /** Where the real IdP listens; set before the first request is forwarded. */
  target: { port: number };
  /** Every token request seen so far, in order. */
  grants: TokenGrant[];
  close(): Promise<void>;
}

const subjectOf = (jwt: unknown): string | undefined => {
  if (typeof jwt !== 'string') return undefined;
  try {
    const sub = decodeJwt(jwt).sub;
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    // An opaque token: nothing to attribute.
    return undefined;
  }
};

function readAll(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

export async function startCountingIdpProxy(): Promise<CountingIdpProxy> {
  const grants: TokenGrant[] = [];
  const target = { port: 0 };

  function forward(req: IncomingMessage, res: ServerResponse, body: Buffer | undefined, onResponse?: (status: number, text: Buffer) => void): void {
    const headers = { ...req.headers };
    if (body) headers['content-length'] = String(body.length);
    const upstream = httpRequest({ host: '127.0.0.1', port: target.port, method: req.method, path: req.url, headers }, (answer) => {
      if (!onResponse) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      readAll(answer).then(
        (text) => {
          onResponse(answer.statusCode ?? 502, text);
          const answerHeaders = { ...answer.headers, 'content-length': String(text.length) };
          delete answerHeaders['transfer-encoding'];
          res.writeHead(answer.statusCode ?? 502, answerHeaders).end(text);
        },
        () => res.destroy(),
      );
    });
    upstream.once('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    if (body) upstream.end(body);
    else req.pipe(upstream);
  }

  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method !== 'POST' || path !== '/token') return forward(req, res, undefined);
    readAll(req).then(
      (body) => {
        const params = new URLSearchParams(body.toString('utf8'));
        const grantType = params.get('grant_type') ?? '(none)';
        forward(req, res, body, (status, text) => {
          let answered: unknown;
          try {
            answered = (JSON.parse(text.toString('utf8')) as { access_token?: unknown }).access_token;
          } catch {
            answered = undefined;
          }
          const subject = params.has('assertion') ? subjectOf(params.get('assertion')) : subjectOf(answered);
          grants.push({ grantType, status, ...(subject ? { subject } : {}) });
        });
      },
      () => res.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://localhost:${port}`,
    target,
    grants,
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
