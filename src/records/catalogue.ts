import { keySetRecord, keysChangedChannel, keysUpdateLock } from '../keys/key-set-record.ts';
import { oidcConsumedRecord, oidcRecords } from '../store/oidc-records.ts';
import type { StoreDefinition } from '../store/define-record.ts';
import { accountRecord } from './account.ts';
import { assertionJtiRecord } from './assertions.ts';
import { consoleSessionRecord, consoleSignInRecord } from './admin.ts';
import { auditRecord } from './audit.ts';
import { appOnlyTokenRecord, clientGrantedRecord, codeExchangedRecord, grantRedirectUrisRecord, refreshRotatedRecord, refreshSuccessorRecord, registrationRateCounter } from './authorization.ts';
import {
  downstreamFailureRecord,
  downstreamTokenLock,
  downstreamTokenRecord,
  upstreamRefreshFailureRecord,
  upstreamRefreshLock,
} from './broker.ts';
import { grantRevokedChannel, revokedGrantRecord } from './grants.ts';
import { consentApprovedRecord, consentStateRecord, interactionSignedInRecord, interactionSignInFailedRecord } from './interaction.ts';
import { consentWithdrawnRecord } from './consent.ts';
import { dpopProofRecord, legacySseSessionRecord, mcpSessionRecord, mcpTaskRecord, rateLimitCounter, sessionEndedChannel } from './proxy.ts';
import { upstreamStepUpRecord } from './step-up.ts';
import { toolPinBaselineRecord, toolPinRecord, toolPinsChangedChannel } from './tool-pins.ts';
import { upstreamStateRecord, upstreamTokensRecord } from './upstream.ts';

/** A section of docs/storage.md: a heading, a sentence, and the names it holds. */
export interface CatalogueSection {
  title: string;
  intro: string;
  entries: readonly StoreDefinition[];
}

/**
 * Every namespace, counter, lock and channel Gatehouse uses, grouped as docs/storage.md shows them
 * (scripts/gen-storage-docs.ts writes the page from this list; test/docs/storage-doc.test.ts checks it is complete).
 */
export const catalogue: readonly CatalogueSection[] = [
  {
    title: 'Authorization server storage (oidc-provider)',
    intro:
      "oidc-provider stores its models through `createOidcAdapter(store, clock)` (src/store/oidc-adapter.ts), one namespace `oidc:<Model>` per model; see [oidc-provider's records](#oidc-providers-records) below for what Gatehouse's configuration makes of them.",
    entries: [...Object.values(oidcRecords), oidcConsumedRecord],
  },
  {
    title: 'Authorization server: refresh rotation, redirect approvals, registration limit',
    intro: 'Written beside oidc-provider\'s records by the adapter hooks and routes of src/authorization/.',
    entries: [refreshRotatedRecord, refreshSuccessorRecord, codeExchangedRecord, grantRedirectUrisRecord, registrationRateCounter],
  },
  {
    title: 'Authorization server: JWT authorization grants',
    intro: 'Replay detection for the `jwt-bearer` grant (ID-JAG, workload identity federation), across replicas.',
    entries: [assertionJtiRecord],
  },
  {
    title: 'Authorization server: what a client holds',
    intro: 'Tokens with no user and no grant record (client credentials, workload tokens), found by client when the client is revoked; and when a user last granted a client access, which keeps its registration from being pruned.',
    entries: [appOnlyTokenRecord, clientGrantedRecord],
  },
  {
    title: 'Authorization server: consent and sign-in state',
    intro: 'Short-lived, single-use records that carry one authorization request through consent and the upstream sign-in; a replayed form post or callback finds nothing.',
    entries: [consentStateRecord, consentApprovedRecord, interactionSignedInRecord, interactionSignInFailedRecord],
  },
  {
    title: 'Authorization server: consent withdrawn',
    intro: 'Approvals live in the browser (a sealed cookie); the store keeps only when a person withdrew them for a user.',
    entries: [consentWithdrawnRecord],
  },
  { title: 'Accounts', intro: 'Who signed in through Gatehouse.', entries: [accountRecord] },
  { title: 'Upstream sign-in', intro: 'The sign-in at the upstream identity provider (src/upstream/).', entries: [upstreamStateRecord, upstreamTokensRecord] },
  { title: 'Admin console', intro: 'The console sign-in and session (src/admin/).', entries: [consoleSignInRecord, consoleSessionRecord] },
  {
    title: 'Token broker',
    intro: 'Downstream tokens and the single-flight locks of src/broker/ (src/broker/single-flight.ts): waiters poll the cache and the failure records.',
    entries: [downstreamTokenRecord, downstreamFailureRecord, upstreamRefreshFailureRecord, upstreamStepUpRecord, downstreamTokenLock, upstreamRefreshLock],
  },
  { title: 'Keys', intro: 'Only with `keys.source: store` (the default).', entries: [keySetRecord, keysUpdateLock, keysChangedChannel] },
  { title: 'Grant revocation', intro: 'What the gateway checks on every request, kept in memory on each replica.', entries: [revokedGrantRecord, grantRevokedChannel] },
  { title: 'Proxy', intro: 'The gateway (src/proxy/).', entries: [auditRecord, rateLimitCounter, mcpSessionRecord, legacySseSessionRecord, sessionEndedChannel, mcpTaskRecord, dpopProofRecord] },
  {
    title: 'Pinned tool definitions',
    intro: 'With a route\'s `toolPinning` on (src/proxy/tool-pins.ts); reviewed with `gatehouse tools list|diff|approve|reject`.',
    entries: [toolPinBaselineRecord, toolPinRecord, toolPinsChangedChannel],
  },
];

export const allDefinitions: readonly StoreDefinition[] = catalogue.flatMap((section) => section.entries);
