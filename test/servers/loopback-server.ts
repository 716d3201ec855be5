import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";

/** An HTTP(S) server on 127.0.0.1 and a free port: the base of the key-service stand-ins. */
export abstract class LoopbackServer {
  readonly #server: Server;
  readonly #scheme: string;
  url = "";

  constructor(tls?: { key: Buffer; cert: Buffer }) {
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    this.#server = tls ? createTlsServer(tls, handler) : createServer(handler);
    this.#scheme = tls ? "https" : "http";
  }

  protected abstract handle(req: IncomingMessage, res: ServerResponse): void;

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.url = `${this.#scheme}://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
