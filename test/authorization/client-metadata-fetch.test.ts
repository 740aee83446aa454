import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isPublicAddress } from '../../src/authorization/address-policy.ts';
import { ClientMetadataFetchError, createGuardedFetch, type GuardedFetch } from '../../src/authorization/client-metadata-fetch.ts';
import { allowTestHost, CIMD_HOST, startCimdServer, testResolve, type CimdServer } from './cimd-server.ts';

describe('address policy', () => {
  const refused = [
    '127.0.0.1', '127.1.2.3', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '169.254.0.1',
    '100.64.0.1', '100.127.255.254', '0.0.0.0', '224.0.0.1', '239.255.255.250', '255.255.255.255', '198.18.0.1',
    '::1', '::', 'fd00:ec2::254', 'fc00::1', 'fe80::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:169.254.169.254', '::ffff:7f00:1', '::ffff:a9fe:a9fe', '::7f00:1',
    '64:ff9b::a9fe:a9fe', '2002:7f00:1::', 'not-an-ip',
    // IPv4-translated (SIIT): where the network translates the prefix, these are 127.0.0.1 and the metadata service.
    '::ffff:0:7f00:1', '::ffff:0:a9fe:a9fe', '::ffff:0:808:808', '3fff::1', '5f00::1',
  ];
  const allowed = ['93.184.216.34', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'];
  for (const address of refused) {
    it(`refuses ${address}`, () => assert.equal(isPublicAddress(address), false));
  }
  for (const address of allowed) {
    it(`allows ${address}`, () => assert.equal(isPublicAddress(address), true));
  }
});

describe('guarded fetch of client metadata documents', () => {
  let cimd: CimdServer;
  let guarded: GuardedFetch;
  let resolutions: string[];

  before(async () => {
    cimd = await startCimdServer();
    cimd.documents.set('/client.json', (clientId) => ({ client_id: clientId, client_name: 'Doc' }));
    resolutions = [];
    guarded = createGuardedFetch({
      maxBytes: 5_120,
      timeoutMs: 5_000,
      extraCa: cimd.ca,
      allowAddress: allowTestHost,
      resolve: async (hostname) => {
        resolutions.push(hostname);
        return testResolve(hostname);
      },
    });
  });
  after(async () => {
    await cimd.close();
  });

  async function refusedWith(url: string, reason: ClientMetadataFetchError['reason']): Promise<void> {
    await assert.rejects(guarded(url), (error: unknown) => {
      assert.ok(error instanceof ClientMetadataFetchError, String(error));
      assert.equal(error.reason, reason);
      return true;
    });
  }

  it('fetches a document from the allowed test host over https, trusting the extra CA', async () => {
    const response = await guarded(cimd.url('/client.json'));
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { client_name: string }).client_name, 'Doc');
  });

  it('resolves once and connects to the vetted address (no second lookup to rebind)', async () => {
    resolutions.length = 0;
    const response = await guarded(cimd.url('/client.json'));
    await response.body?.cancel();
    assert.deepEqual(resolutions, [CIMD_HOST]);
  });

  it('refuses 127.0.0.1 by address, even on the same server', async () => {
    const before = cimd.requests;
    await refusedWith(`https://127.0.0.1:${cimd.port}/client.json`, 'address');
    assert.equal(cimd.requests, before, 'no request reached the server');
  });

  it('refuses names resolving to the cloud metadata service (IPv4 and IPv6)', async () => {
    await refusedWith('https://metadata.test/latest/meta-data/', 'address');
    await refusedWith('https://169.254.169.254/latest/meta-data/', 'address');
    await refusedWith('https://v6-metadata.test/latest/meta-data/', 'address');
    await refusedWith('https://[fd00:ec2::254]/latest/meta-data/', 'address');
    await refusedWith('https://[::ffff:169.254.169.254]/latest/meta-data/', 'address');
  });

  it('refuses a name with any private address among its answers', async () => {
    await refusedWith('https://mixed.test/client.json', 'address');
  });

  it('refuses http and credentials in the URL', async () => {
    await refusedWith(`http://${CIMD_HOST}:${cimd.port}/client.json`, 'scheme');
    await refusedWith(`https://user:pass@${CIMD_HOST}:${cimd.port}/client.json`, 'scheme');
  });

  it('never follows redirects', async () => {
    await refusedWith(cimd.url('/redirect'), 'redirect');
    await refusedWith(cimd.url('/redirect-internal'), 'redirect');
  });

  it('aborts a 10 MB document past the size cap', async () => {
    await refusedWith(cimd.url('/huge'), 'too_large');
  });
});
