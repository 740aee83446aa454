import { GatehouseError } from '../../errors/internal-errors.ts';

/**
 * The few Microsoft Graph v1.0 calls `gatehouse entra setup` makes, with the operator's own token. Reads always go to
 * Graph; in a dry run, writes are only recorded and answered with a placeholder object, so the plan that follows
 * from the current state can still be printed in full. Every request is logged (method, URL, body: never the token).
 */
export interface OperatorCredential {
  /** A Graph access token for the signed-in operator (e.g. @azure/identity's AzureCliCredential). */
  getToken(scopes: string | string[]): Promise<{ token: string } | null>;
}

export interface GraphRequest {
  method: 'GET' | 'POST' | 'PATCH';
  url: string;
  body?: unknown;
  /** true when the request was only recorded (dry run). */
  skipped: boolean;
}

export interface GraphClient {
  get<T>(path: string): Promise<T>;
  /** Every item of a collection (follows @odata.nextLink). */
  list<T>(path: string): Promise<T[]>;
  post<T>(path: string, body: unknown, placeholder: T): Promise<T>;
  patch(path: string, body: unknown): Promise<void>;
  readonly requests: readonly GraphRequest[];
}

export interface GraphClientOptions {
  /** `https://graph.microsoft.com` (or a national cloud's Graph host). */
  baseUrl: string;
  credential: OperatorCredential;
  dryRun: boolean;
  fetch?: typeof globalThis.fetch;
  /** Called with each request as it is made, for --dry-run's printout. */
  onRequest?: (request: GraphRequest) => void;
}

export function createGraphClient(options: GraphClientOptions): GraphClient {
  const { credential, dryRun, onRequest } = options;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const base = options.baseUrl.replace(/\/+$/, '');
  const scope = `${base}/.default`;
  const requests: GraphRequest[] = [];
  let token: string | undefined;

  const record = (request: GraphRequest): void => {
    requests.push(request);
    onRequest?.(request);
  };

  async function bearer(): Promise<string> {
    if (token) return token;
    let result: { token: string } | null;
    try {
      result = await credential.getToken(scope);
    } catch (error) {
      throw new GatehouseError('GH_GRAPH_REQUEST', `sign-in for Microsoft Graph failed: ${firstLine(error)}`, { cause: error });
    }
    if (!result?.token) throw new GatehouseError('GH_GRAPH_REQUEST', 'sign-in for Microsoft Graph returned no token');
    token = result.token;
    return token;
  }

  async function send(method: GraphRequest['method'], url: string, body?: unknown): Promise<unknown> {
    record({ method, url, ...(body === undefined ? {} : { body }), skipped: false });
    let response: Response;
    try {
      response = await fetchImpl(url, {
        method,
        headers: { authorization: `Bearer ${await bearer()}`, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (error) {
      if (error instanceof GatehouseError) throw error;
      throw new GatehouseError('GH_GRAPH_REQUEST', `${method} ${url}: ${firstLine(error)}`, { cause: error });
    }
    const text = await response.text();
    if (!response.ok) throw new GatehouseError('GH_GRAPH_REQUEST', `${method} ${url}: ${response.status} ${graphErrorOf(text)}`);
    return text ? JSON.parse(text) : undefined;
  }

  const url = (path: string): string => (path.startsWith('https://') || path.startsWith('http://') ? path : `${base}/v1.0${path}`);

  return {
    requests,
    get: async <T>(path: string) => (await send('GET', url(path))) as T,
    async list<T>(path: string) {
      const items: T[] = [];
      for (let next: string | undefined = url(path); next; ) {
        const page = (await send('GET', next)) as { value?: T[]; '@odata.nextLink'?: string };
        items.push(...(page.value ?? []));
        next = page['@odata.nextLink'];
      }
      return items;
    },
    async post<T>(path: string, body: unknown, placeholder: T) {
      if (dryRun) {
        record({ method: 'POST', url: url(path), body, skipped: true });
        return placeholder;
      }
      return (await send('POST', url(path), body)) as T;
    },
    async patch(path: string, body: unknown) {
      if (dryRun) {
        record({ method: 'PATCH', url: url(path), body, skipped: true });
        return;
      }
      await send('PATCH', url(path), body);
    },
  };
}

/** Graph errors are `{ error: { code, message } }`; anything else is cut short (it may be an HTML error page). */
function graphErrorOf(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (parsed.error) return `${String(parsed.error.code ?? 'error')}: ${firstLine(String(parsed.error.message ?? ''))}`;
  } catch {
    // not JSON
  }
  return text.slice(0, 200).replace(/\s+/g, ' ');
}

const firstLine = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';

/** `$filter=… eq 'value'` with the value quoted as OData requires (a quote is doubled). */
export const odataString = (value: string): string => `'${value.replace(/'/g, "''")}'`;
