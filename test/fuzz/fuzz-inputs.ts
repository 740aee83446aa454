/**
 * Seeded generators of malformed HTTP input for the endpoint fuzz test. Everything is derived from one 32-bit seed,
 * so a failure prints the seed and the request number and replays exactly.
 */
export type Rng = () => number;

/** mulberry32: tiny, fast, good enough to pick cases; not for anything secret. */
export function seededRng(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;

const deep = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);

/** JSON-RPC-shaped and not-quite-JSON bodies: what a confused or hostile MCP client sends. */
export function jsonBody(rng: Rng): string {
  const id = pick(rng, ['1', '"x"', 'null', '1.5', '{}', '[]', '"__proto__"', '-0', '1e400']);
  const method = pick(rng, ['"tools/call"', '"tools/list"', '"initialize"', '"ping"', '""', '1', 'null', '"__proto__"', '"toString"', '"resources/read"', '"prompts/get"']);
  const name = pick(rng, ['"echo"', '"hello"', '"get_graph_user_details"', '"__proto__"', '"constructor"', '"ca\\u00e9"', '"\\u0000"', '1', 'null', '"x".repeat']);
  return pick(rng, [
    '',
    ' ',
    '{',
    '[]',
    'null',
    'true',
    '"string"',
    '{"jsonrpc":"2.0"}',
    `{"jsonrpc":"2.0","id":${id},"method":${method}}`,
    `{"jsonrpc":"2.0","id":${id},"method":${method},"params":{"name":${name},"arguments":{}}}`,
    `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":${name},"arguments":${deep(2000)}}}`,
    `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":1,"method":${method}}]`,
    `{"__proto__":{"admin":true},"jsonrpc":"2.0","id":1,"method":"ping"}`,
    `{"constructor":{"prototype":{"x":1}},"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
    deep(5000),
    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"${'é'.repeat(200)}"}}}`,
    '\u0000\u0001\u0002',
    '\uFEFF{"jsonrpc":"2.0","id":1,"method":"ping"}',
  ]);
}

/** Form bodies for the OAuth endpoints: repeated, missing, prototype-named and oversized parameters. */
export function formBody(rng: Rng): string {
  const key = () =>
    pick(rng, ['grant_type', 'code', 'client_id', 'redirect_uri', 'token', 'refresh_token', 'resource', 'scope', '__proto__', 'toString', 'constructor', 'code_verifier', 'client_assertion', 'client_assertion_type', 'assertion', 'subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'csrf', 'decision', 'consent_state', 'window', 'outcome', '']);
  const value = () =>
    pick(rng, [
      '',
      'authorization_code',
      'refresh_token',
      'client_credentials',
      'urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer',
      'urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange',
      'urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid-jag',
      // An unsigned JWT, a JWT-shaped string with a garbage header, and one with a header naming an ID-JAG.
      'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
      'e30.e30.e30',
      'eyJhbGciOiJFUzI1NiIsInR5cCI6Im9hdXRoLWlkLWphZytqd3QifQ.eyJpc3MiOiJ4In0.AAAA',
      'x',
      '%00',
      '%E0%A4%A',
      '..%2f..%2f',
      'http://evil.example/cb',
      'a'.repeat(5000),
      '{}',
      '[]',
      'approve',
    ]);
  const parts: string[] = [];
  const count = Math.floor(rng() * 6);
  for (let i = 0; i < count; i++) parts.push(`${key()}=${value()}`);
  return parts.join(pick(rng, ['&', '&&', ';', '&=&']));
}

export function queryString(rng: Rng): string {
  return pick(rng, [
    '',
    '?',
    '?sessionId=',
    '?sessionId=x&sessionId=y',
    '?done=toString',
    '?done=__proto__',
    '?done=constructor',
    '?return=//evil.example',
    '?return=/admin/../account',
    '?user=__proto__&client=constructor&tool=toString',
    '?since=NaN&outcome=__proto__',
    '?client_id=x&client_id=y&response_type=code',
    '?client_id=__proto__&redirect_uri=http://127.0.0.1/cb&response_type=code&code_challenge=x&code_challenge_method=plain',
    '?resource=http://LOCALHOST/mcp/&scope=mcp:tools',
    '?%zz=%zz',
    `?q=${'a'.repeat(6000)}`,
    '?code=x&state=y&iss=z',
    '?error=access_denied&state=__proto__',
  ]);
}

/** Path suffixes appended to a known endpoint: traversal in every encoding, odd characters, nothing at all. */
export function pathSuffix(rng: Rng): string {
  if (rng() < 0.6) return '';
  return pick(rng, ['/', '//', '/x', '/%2e%2e/%2e%2e/etc/passwd', '/../../secret', '/.%2e/x', '/%2E%2E/x', '/..%5cx', '/%00', '/%', '/%c0%ae%c0%ae/', '/;x=y', '/__proto__', '/' + 'a'.repeat(3000), '/%E0%A4%A']);
}

export const METHODS = ['GET', 'GET', 'POST', 'POST', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'QUERY', 'PROPFIND'] as const;

export const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/x-www-form-urlencoded',
  'text/plain',
  'multipart/form-data; boundary=x',
  'application/json; charset=latin1',
  '',
  'application/jsonx',
  'text/event-stream',
] as const;
