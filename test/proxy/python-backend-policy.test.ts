import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { preparePythonClients } from '../e2e/support/python-clients.ts';
import { freePort } from '../support/ports.ts';
import { createTestKeyring, mintAccessToken, startTestGateway, type TestGateway } from './harness.ts';

/**
 * Argument policies in front of a Python MCP server (FastMCP 4.0.10, which validates tool arguments with Pydantic's
 * lenient mode): what the policy refused must not reach the backend in a spelling the backend reads as the same
 * value. The backend prints every call it runs (`RAN {…}`); the test reads those lines.
 */
const SERVER = `
import json, sys
from fastmcp import FastMCP
mcp = FastMCP("files")

@mcp.tool
def delete_file(path: str, recursive: bool = False) -> str:
    print("RAN " + json.dumps({"ran": "delete_file", "path": path, "recursive": recursive}), flush=True)
    return f"deleted {path} recursive={recursive}"

@mcp.tool
def post_to_channel(channel: int, text: str) -> str:
    print("RAN " + json.dumps({"ran": "post_to_channel", "channel": str(channel)}), flush=True)
    return f"posted to {channel}"

@mcp.tool
def notify(channels: list[int], flags: list[bool]) -> str:
    print("RAN " + json.dumps({"ran": "notify", "channels": channels, "flags": flags}), flush=True)
    return f"notified {channels}"

mcp.run(transport="http", host="127.0.0.1", port=int(sys.argv[1]), path="/mcp", show_banner=False)
`;

const python = resolve(import.meta.dirname, '..', '..', '.venv-clients', 'bin', 'python');
const prepared = preparePythonClients();
const keyring = createTestKeyring();
let backend: ChildProcess | undefined;
let directory: string | undefined;
let gateway: TestGateway | undefined;
/** Every call the backend ran, as it printed it. */
const ran: Array<Record<string, unknown>> = [];

before(async () => {
  if (!prepared.ready) return;
  const port = await freePort();
  directory = mkdtempSync(join(tmpdir(), 'gatehouse-fastmcp-'));
  const script = join(directory, 'server.py');
  writeFileSync(script, SERVER);
  backend = spawn(python, [script, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const started = Promise.withResolvers<void>();
  backend.stderr!.on('data', (chunk: Buffer) => {
    if (chunk.toString().includes('Uvicorn running')) started.resolve();
  });
  backend.once('exit', (code) => started.reject(new Error(`the FastMCP server exited (${code})`)));
  void (async () => {
    // Uvicorn writes its own lines there too.
    for await (const line of createInterface({ input: backend!.stdout! })) if (line.startsWith('RAN ')) ran.push(JSON.parse(line.slice(4)) as Record<string, unknown>);
  })();
  await started.promise;
  gateway = await startTestGateway({
    keyring,
    config: {
      routes: [
        {
          path: '/files',
          backend: `http://127.0.0.1:${port}/mcp`,
          deniedToolResponse: 'jsonrpc_error',
          tools: {
            delete_file: { allow: '(!has(args.recursive) || args.recursive != true) && !args.path.startsWith("/etc")', denyReason: 'no recursive deletes' },
            post_to_channel: { allow: 'args.channel != 1234567890123456789', denyReason: 'not that channel' },
            notify: { allow: '!(1 in args.channels) && args.flags != [true]', denyReason: 'not channel 1, not flagged' },
          },
        },
        {
          // The same backend with its definitions pinned: the approved input schema types the arguments.
          path: '/pinned',
          backend: `http://127.0.0.1:${port}/mcp`,
          deniedToolResponse: 'jsonrpc_error',
          toolPinning: 'warn',
          tools: { delete_file: { allow: '(!has(args.recursive) || args.recursive != true) && !args.path.startsWith("/etc")', denyReason: 'no recursive deletes' } },
        },
      ],
    },
  });
});
after(async () => {
  await gateway?.close();
  backend?.kill();
  if (directory !== undefined) rmSync(directory, { recursive: true, force: true });
});

async function connected(path = '/files'): Promise<Client> {
  const token = await mintAccessToken(keyring, gateway!.url, { aud: `${gateway!.url}${path}` });
  const client = new Client({ name: 'policy-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${gateway!.url}${path}`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
  return client;
}

describe('argument policies in front of a FastMCP (Pydantic) backend', { skip: prepared.ready ? false : prepared.reason }, () => {
  it('refuses a value of another type than the policy compares (the backend would read "true", 1 or "yes" as true)', async () => {
    const client = await connected();
    try {
      const allowed = (await client.callTool({ name: 'delete_file', arguments: { path: '/tmp/x', recursive: false } })) as { content: Array<{ text: string }> };
      assert.equal(allowed.content[0]?.text, 'deleted /tmp/x recursive=False');
      for (const recursive of [true, 'true', 1, 'yes', 'True']) {
        await assert.rejects(client.callTool({ name: 'delete_file', arguments: { path: '/tmp/y', recursive } }), /no recursive deletes|could not be evaluated/, JSON.stringify(recursive));
      }
      assert.deepEqual(ran.filter((call) => call.ran === 'delete_file'), [{ ran: 'delete_file', path: '/tmp/x', recursive: false }]);
    } finally {
      await client.close();
    }
  });

  it('refuses an integer past 2^53 that the policy compares: the gateway saw it rounded, Python reads it exactly', async () => {
    const client = await connected();
    try {
      // Sent as the exact digits: the SDK serialises a bigint-free number, so the body is written by hand here.
      const session = (client.transport as StreamableHTTPClientTransport).sessionId;
      const token = await mintAccessToken(keyring, gateway!.url, { aud: `${gateway!.url}/files` });
      const response = await fetch(`${gateway!.url}/files`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...(session === undefined ? {} : { 'mcp-session-id': session }),
          'mcp-protocol-version': client.getNegotiatedProtocolVersion?.() ?? '2025-06-18',
        },
        body: '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"post_to_channel","arguments":{"channel":1234567890123456789,"text":"hi"}}}',
      });
      const text = await response.text();
      assert.match(text, /too large to judge exactly/, text);
      const allowed = (await client.callTool({ name: 'post_to_channel', arguments: { channel: 42, text: 'hi' } })) as { content: Array<{ text: string }> };
      assert.equal(allowed.content[0]?.text, 'posted to 42');
      assert.deepEqual(ran.filter((call) => call.ran === 'post_to_channel'), [{ ran: 'post_to_channel', channel: '42' }]);
    } finally {
      await client.close();
    }
  });

  it('refuses lists the backend reads as the values the policy refuses (["1"] as [1], ["true"] as [true])', async () => {
    const client = await connected();
    try {
      const allowed = (await client.callTool({ name: 'notify', arguments: { channels: [2], flags: [false] } })) as { content: Array<{ text: string }> };
      assert.equal(allowed.content[0]?.text, 'notified [2]');
      for (const args of [{ channels: [1], flags: [false] }, { channels: ['1'], flags: [false] }, { channels: [2], flags: ['true'] }, { channels: [2], flags: ['yes'] }]) {
        await assert.rejects(client.callTool({ name: 'notify', arguments: args }), /not channel 1, not flagged/, JSON.stringify(args));
      }
      assert.deepEqual(ran.filter((call) => call.ran === 'notify'), [{ ran: 'notify', channels: [2], flags: [false] }]);
    } finally {
      await client.close();
    }
  });

  it("refuses, on a route that pins definitions, an argument of another type than the approved schema declares", async () => {
    const client = await connected('/pinned');
    try {
      // The first tools/list pins the backend's definitions (trust on first use), input schemas included.
      const { tools } = await client.listTools();
      assert.ok(tools.some((tool) => tool.name === 'delete_file'));
      const before = ran.length;
      for (const recursive of ['1', 'no', 0]) {
        await assert.rejects(client.callTool({ name: 'delete_file', arguments: { path: '/tmp/p', recursive } }), /approved schema declares boolean/, JSON.stringify(recursive));
      }
      const allowed = (await client.callTool({ name: 'delete_file', arguments: { path: '/tmp/p', recursive: false } })) as { content: Array<{ text: string }> };
      assert.equal(allowed.content[0]?.text, 'deleted /tmp/p recursive=False');
      assert.deepEqual(ran.slice(before), [{ ran: 'delete_file', path: '/tmp/p', recursive: false }]);
    } finally {
      await client.close();
    }
  });
});
