import { X509Certificate, createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { ConfigError } from '../../config/config-error.ts';
import type { Clock } from '../../runtime/clock.ts';
import type { Random } from '../../runtime/random.ts';

/** RFC 7523 §2.2 client assertions: fresh `jti`, two-minute life (Entra accepts up to 10 min; shorter limits replay). */
export const CLIENT_ASSERTION_LIFETIME_SECONDS = 120;

export interface PrivateKeyJwtSigner {
  /** A client assertion for `audience` (the token endpoint, as Entra requires). */
  sign(audience: string): Promise<string>;
}

function algorithmFor(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return 'RS256';
    case 'rsa-pss':
      return 'PS256';
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1') return 'ES256';
      if (curve === 'secp384r1') return 'ES384';
      if (curve === 'secp521r1') return 'ES512';
      throw new ConfigError([`upstream.clientAuth.privateKeyFile: unsupported EC curve ${curve ?? 'unknown'} (use P-256, P-384 or P-521)`]);
    }
    case 'ed25519':
      return 'EdDSA';
    default:
      throw new ConfigError([`upstream.clientAuth.privateKeyFile: unsupported key type ${key.asymmetricKeyType ?? 'unknown'} (use RSA, EC or Ed25519)`]);
  }
}

/** A key or certificate that does not parse is a configuration mistake (exit 2), named by its setting. */
function parsePem<T>(field: string, what: string, parse: () => T): T {
  try {
    return parse();
  } catch {
    // OpenSSL's message ("DECODER routines::unsupported") says nothing an operator can act on.
    throw new ConfigError([`upstream.clientAuth.${field}: not ${what}`]);
  }
}

/**
 * Signs with a PEM key. With the certificate, the header carries its SHA-256 thumbprint as `x5t#S256` (RFC 7515
 * §4.1.8): that is how Entra finds which uploaded certificate to verify against. Key problems fail at start.
 */
export function createPrivateKeyJwtSigner(options: {
  clientId: string;
  privateKeyPem: string;
  certificatePem?: string;
  keyId?: string;
  clock: Clock;
  random: Random;
}): PrivateKeyJwtSigner {
  const { clientId, clock, random } = options;
  const key = parsePem('privateKeyFile', 'a PEM private key', () => createPrivateKey(options.privateKeyPem));
  const alg = algorithmFor(key);
  const header: Record<string, string> = { alg, typ: 'JWT' };
  if (options.keyId) header.kid = options.keyId;
  if (options.certificatePem) {
    const certificatePem = options.certificatePem;
    const certificate = parsePem('certificateFile', 'a PEM certificate', () => new X509Certificate(certificatePem));
    if (!certificate.checkPrivateKey(key)) throw new ConfigError(['upstream.clientAuth.certificateFile: the certificate does not match the private key']);
    header['x5t#S256'] = createHash('sha256').update(certificate.raw).digest('base64url');
  }

  return {
    async sign(audience) {
      const now = Math.floor(clock.now() / 1000);
      return new SignJWT({})
        .setProtectedHeader({ ...header, alg })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(audience)
        .setJti(random.token(18))
        .setIssuedAt(now)
        .setNotBefore(now)
        .setExpirationTime(now + CLIENT_ASSERTION_LIFETIME_SECONDS)
        .sign(key);
    },
  };
}
