import { ProtocolError } from '../errors/protocol-error.ts';

/**
 * DNS-rebinding defence: a web page on an attacker's domain resolving to the gateway's address would otherwise be
 * able to drive it from a victim's browser. Requests without `Origin` come from non-browser clients and are allowed;
 * a browser origin must be the gateway's own or in `server.allowedOrigins`.
 *
 * @see MCP 2025-11-25 basic/transports, security warning — servers MUST validate `Origin`.
 */
export interface OriginPolicy {
  isAllowed(origin: string): boolean;
  /** Throws `forbidden_origin` (403) for a browser origin that is not allowed. */
  check(origin: string | undefined): void;
}

export function createOriginPolicy(publicUrl: string, allowedOrigins: readonly string[]): OriginPolicy {
  const allowed = new Set([new URL(publicUrl).origin, ...allowedOrigins.map((origin) => origin.replace(/\/$/, ''))]);
  const isAllowed = (origin: string) => allowed.has(origin);
  return {
    isAllowed,
    check(origin) {
      if (origin !== undefined && !isAllowed(origin)) throw new ProtocolError('forbidden_origin', 'This origin may not call this route.');
    },
  };
}
