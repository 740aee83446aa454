import { z } from 'zod';
import { defineRecord } from '../store/define-record.ts';

/**
 * JWT authorization grants seen at the token endpoint (RFC 7523 §3 item 7: `jti` replay), shared by every replica.
 */
export const assertionJtiRecord = defineRecord({
  namespace: 'assertion-jti',
  owner: 'src/authorization/grants/assertion-replay.ts',
  key: 'SHA-256 (hex) of the assertion\'s `iss`, a NUL and its `jti`',
  schema: z.object({ at: z.number() }),
  ttl: "until the assertion's `exp` plus the accepted clock skew (60 s)",
  singleUse: false,
  secrets: 'key hashed; the assertion itself is never stored',
  description:
    'An ID-JAG or workload token already exchanged (epoch ms), written with `setIfAbsent`: of two requests with the same assertion, on any replica, exactly one creates it and gets a token; the other is `invalid_grant`.',
});
