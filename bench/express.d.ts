/** The part of Express 5's API the Express peer uses (the package ships no types; the peer needs no more). */
declare module 'express' {
  import type { IncomingMessage, Server, ServerResponse } from 'node:http';

  export type RequestHandler = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => unknown;
  interface Application {
    use(...handlers: RequestHandler[]): Application;
    listen(port: number, host: string, callback: () => void): Server;
  }
  function express(): Application;
  export default express;
}
