import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import Provider from 'oidc-provider';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../../runtime/clock.ts';
import { cryptoRandom, type Random } from '../../runtime/random.ts';
import {
  DEFAULT_WORKLOAD_SUBJECT,
  FEDERATED_CREDENTIAL_AUDIENCE,
  createWorkloadIdentity,
  type WorkloadIdentity,
} from '../workload-identity/workload-identity-issuer.ts';
import { createDownstreamGrants, JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT } from './downstream-grants.ts';
import { entraError, sendEntraError } from './entra-errors.ts';
import { gateTokenRequest, type TokenRequestGateDeps } from './token-request-gate.ts';
import { createFederatedCredentialBridge } from './federated-credential.ts';
import { createInteractionHandler } from './interactions.ts';
import { memoryAdapterFactory } from './memory-adapter.ts';
import { openPersistedState } from './persisted-state.ts';
import { providerConfiguration, type SsoClient } from './provider-configuration.ts';
import { createIdJagIssuer } from './id-jag-issuer.ts';
import { ID_JAG_TOKEN_TYPE } from '../../protocol/oauth-urns.ts';
import { defaultUsers, loadUsersFile, localUserSchema, type LocalUser, type LocalUserInput } from './users.ts';

/**
 * DEVELOPMENT ONLY — a local OpenID Connect identity provider standing in for Entra ID in the demo and in tests: a
 * second oidc-provider instance (in-memory storage) with test users, a sign-in form, refresh tokens, Entra's
 * on-behalf-of grant and RFC 8693 token exchange, and the gateway client authenticating without any secret (a
 * federated assertion from the local workload-identity issuer, or private_key_jwt). Never started in production mode.
 */
export interface LocalIdentityProviderOptions {
  port?: number;
  host?: string;
  /** Defaults to `http://{host}:{port}`. */
  issuer?: string;
  users?: LocalUserInput[];
  usersFile?: string;
  gateway: {
    clientId: string;
    redirectUris: string[];
    /** Where the gateway may ask to land after RP-initiated logout (OIDC RP-Initiated Logout §3). */
    postLogoutRedirectUris?: string[];
    /** Subject of the trusted federated credential, e.g. `system:serviceaccount:gatehouse:gatehouse`. */
    federatedSubject?: string;
    /** Issuer of the trusted federated credential (the local workload-identity issuer); defaults to the mounted one. */
    workloadIssuerUrl?: string;
    federatedAudience?: string;
    /** Public keys for the gateway's own private_key_jwt client assertions. */
    jwks?: JWK[];
    /** `aud` of the gateway's access tokens; default `api://gatehouse`. */
    audience?: string;
  };
  /** Downstream API audiences tokens can be exchanged for, e.g. `http://localhost:8083`. */
  downstreamAudiences: string[];
  /**
   * The local IdP as an enterprise IdP: MCP clients users sign in to here, and the resource authorization servers
   * (the demo's Gatehouse) it issues ID-JAGs for (id-jag-issuer.ts).
   */
  enterprise?: { clients: SsoClient[]; audiences: string[] };
  /**
   * Also serve a local workload-identity issuer under this path of the IdP's origin (the demo uses
   * `/workload-identity`); the gateway's federated credential then trusts it unless `gateway.workloadIssuerUrl` is set.
   */
  workloadIdentityPath?: string;
  /** More audiences the mounted workload-identity issuer mints for (Gatehouse's token endpoint, for federation). */
  workloadAudiences?: string[];
  /**
   * Where to keep the signing key and the sessions, grants and refresh tokens across restarts (persisted-state.ts);
   * in memory only without it.
   */
  stateFile?: string;
  /** Must agree with oidc-provider's own clock (the system clock) for tokens it issues to verify. */
  clock?: Clock;
  random?: Random;
  logger?: Logger;
  fetch?: typeof globalThis.fetch;
}

export interface LocalIdentityProvider {
  issuer: string;
  /** The live user list: tests may flip `requireInteraction` / `requireConsent` on a user. */
  users: LocalUser[];
  /** The scope that asks for a gateway-audience access token. */
  gatewayScope: string;
  gatewayAudience: string;
  /** The mounted workload-identity issuer, with `workloadIdentityPath`. */
  workloadIdentity?: WorkloadIdentity;
  /** Revokes every refresh token issued to the user so far (Entra: "revoke sessions"). */
  revokeRefreshTokens(userId: string): void;
  close(): Promise<void>;
}

export async function startLocalIdentityProvider(options: LocalIdentityProviderOptions): Promise<LocalIdentityProvider> {
  const { host = '127.0.0.1', clock = systemClock, random = cryptoRandom, logger } = options;
  const users: LocalUser[] = options.usersFile
    ? loadUsersFile(options.usersFile)
    : options.users
      ? options.users.map((user) => localUserSchema.parse(user))
      : defaultUsers(random);
  const findUser = (id: string) => users.find((user) => user.id === id);
  const revokedBefore = new Map<string, number>();
  const gatewayAudience = options.gateway.audience ?? 'api://gatehouse';
  const gatewayScope = `${gatewayAudience}/access_as_user`;

  const persisted =
    options.stateFile === undefined
      ? undefined
      : openPersistedState(options.stateFile, () => clock.now(), (error) => logger?.warn({ err: error }, 'the local identity provider could not read or save its state; it goes on in memory'));
  // A kept key that does not import (a hand-edited file) is replaced, as an unreadable file is: the demo still starts.
  const kept = persisted?.signingKey;
  const keptKey = kept === undefined ? undefined : await importSigningKey(kept).catch(() => undefined);
  if (kept !== undefined && keptKey === undefined) logger?.warn('the local identity provider could not use its kept signing key; it makes a new one');
  const privateJwk: JWK =
    kept !== undefined && keptKey !== undefined ? kept : { ...(await exportJWK((await generateKeyPair('ES256', { extractable: true })).privateKey)), alg: 'ES256', use: 'sig' };
  privateJwk.kid = await calculateJwkThumbprint(privateJwk);
  const cookieKeys = persisted?.cookieKeys ?? [random.token(32)];
  if (persisted !== undefined && (persisted.signingKey !== privateJwk || persisted.cookieKeys === undefined)) {
    persisted.signingKey = privateJwk;
    persisted.cookieKeys = cookieKeys;
    persisted.changed();
  }
  const signingKey = keptKey ?? (await importSigningKey(privateJwk));
  const publicJwk: JWK = { kty: privateJwk.kty, crv: privateJwk.crv, x: privateJwk.x, y: privateJwk.y, kid: privateJwk.kid, alg: 'ES256', use: 'sig' };
  const bridge = await generateKeyPair('ES256', { extractable: true });
  const bridgeJwk: JWK = { ...(await exportJWK(bridge.publicKey)), alg: 'ES256', use: 'sig' };
  bridgeJwk.kid = await calculateJwkThumbprint(bridgeJwk);

  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const issuer = (options.issuer ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(/\/+$/, '');

  const provider = new Provider(
    issuer,
    providerConfiguration({
      privateJwk,
      gatewayClientId: options.gateway.clientId,
      gatewayRedirectUris: options.gateway.redirectUris,
      gatewayPostLogoutRedirectUris: options.gateway.postLogoutRedirectUris ?? [],
      gatewayAudience,
      gatewayScope,
      gatewayClientJwks: [bridgeJwk, ...(options.gateway.jwks ?? [])],
      extraGrantTypes: [JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT],
      ssoClients: options.enterprise?.clients ?? [],
      findUser,
      cookieKeys,
      adapter: memoryAdapterFactory(clock, persisted),
    }),
  );
  const grants = createDownstreamGrants({
    issuer: () => issuer,
    gatewayClientId: options.gateway.clientId,
    gatewayAudience,
    downstreamAudiences: options.downstreamAudiences,
    findUser,
    publicJwks: { keys: [publicJwk] },
    signingKey,
    signingKid: privateJwk.kid,
    clock,
    random,
  });
  provider.registerGrantType(JWT_BEARER_GRANT, (ctx) => grants.onBehalfOf(ctx), ['assertion', 'requested_token_use', 'scope']);
  const issueIdJag = createIdJagIssuer({
    issuer: () => issuer,
    audiences: options.enterprise?.audiences ?? [],
    publicJwks: { keys: [publicJwk] },
    signingKey,
    signingKid: privateJwk.kid,
    findUser,
    clock,
    random,
  });
  // One RFC 8693 endpoint, two answers: a downstream token for the gateway, an ID-JAG for an SSO client.
  provider.registerGrantType(
    TOKEN_EXCHANGE_GRANT,
    (ctx) => (ctx.oidc.params?.requested_token_type === ID_JAG_TOKEN_TYPE ? issueIdJag(ctx) : grants.tokenExchange(ctx)),
    ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope'],
  );

  const workloadIdentity = options.workloadIdentityPath
    ? await createWorkloadIdentity(`${issuer}/${options.workloadIdentityPath.replace(/^\/+|\/+$/g, '')}`, {
        clock,
        random,
        ...(options.gateway.federatedSubject ? { subject: options.gateway.federatedSubject } : {}),
        audiences: [FEDERATED_CREDENTIAL_AUDIENCE, ...(options.workloadAudiences ?? [])],
        ...(logger ? { logger } : {}),
      })
    : undefined;
  const trustedIssuer = options.gateway.workloadIssuerUrl ?? workloadIdentity?.issuer;
  const federated = trustedIssuer
    ? createFederatedCredentialBridge({
        trust: {
          issuer: trustedIssuer,
          subject: options.gateway.federatedSubject ?? DEFAULT_WORKLOAD_SUBJECT,
          audience: options.gateway.federatedAudience ?? FEDERATED_CREDENTIAL_AUDIENCE,
        },
        clientId: options.gateway.clientId,
        bridgeKey: bridge.privateKey,
        bridgeKid: bridgeJwk.kid,
        providerIssuer: () => issuer,
        clock,
        random,
        ...(options.fetch ? { fetch: options.fetch } : {}),
        ...(workloadIdentity && trustedIssuer === workloadIdentity.issuer ? { issuerJwks: workloadIdentity.publicJwks } : {}),
      })
    : undefined;
  const clientIds = new Set([options.gateway.clientId, ...(options.enterprise?.clients ?? []).map((client) => client.clientId)]);
  const interactions = createInteractionHandler({ provider, clientIds, users: () => users, oneTimeCodeSecret: random.token(32) });
  const providerCallback = provider.callback();
  const gate = {
    federated,
    findRefreshToken: (provider.RefreshToken as { find: TokenRequestGateDeps['findRefreshToken'] }).find.bind(provider.RefreshToken),
    revokedBefore,
    clock,
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', issuer);
    (async () => {
      if (workloadIdentity?.handle(req, res)) return;
      if (await interactions(req, res, url.pathname)) return;
      let forward: IncomingMessage | undefined = req;
      if (req.method === 'POST' && url.pathname === '/token') forward = await gateTokenRequest(gate, req, res);
      if (!forward) return;
      if (req.method === 'GET' && url.pathname === '/authorize') {
        // OIDC Core §11 lets an OP ignore offline_access without prompt=consent (oidc-provider does); Entra does not.
        const scope = url.searchParams.get('scope') ?? '';
        if (scope.split(' ').includes('offline_access') && !url.searchParams.has('prompt')) {
          url.searchParams.set('prompt', 'consent');
          req.url = `${url.pathname}${url.search}`;
        }
      }
      providerCallback(forward, res);
    })().catch((error: unknown) => {
      logger?.error({ err: error }, 'local identity provider request failed');
      if (!res.headersSent) sendEntraError(res, 400, entraError('invalid_request', 50013, { now: clock.now() }));
    });
  });
  logger?.warn({ issuer }, 'DEVELOPMENT ONLY: local identity provider started');

  return {
    issuer,
    users,
    ...(workloadIdentity ? { workloadIdentity } : {}),
    gatewayScope,
    gatewayAudience,
    revokeRefreshTokens(userId) {
      revokedBefore.set(userId, clock.now());
    },
    close() {
      workloadIdentity?.stop();
      persisted?.flush();
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}

/** An EC private JWK imports as a CryptoKey (a Uint8Array only for a symmetric key, which ES256 refuses). */
async function importSigningKey(jwk: JWK): Promise<CryptoKey> {
  return (await importJWK(jwk, 'ES256')) as CryptoKey;
}
