// A TLS-terminating proxy: accepts TLS on a random loopback port with the given key and
// certificate and passes the plain bytes to an upstream TCP port (s3rver, or the fault
// proxy in front of it), as a load balancer in front of a storage server would.
import * as net from "node:net";
import * as tls from "node:tls";

export interface TlsProxy {
  port: number;
  /** TLS handshakes that failed (a client that refused our certificate). */
  handshakeFailures: number;
  close(): Promise<void>;
}

export async function startTlsProxy(
  upstreamPort: number,
  key: Buffer,
  cert: Buffer,
): Promise<TlsProxy> {
  const sockets = new Set<net.Socket>();
  const state = { handshakeFailures: 0 };
  const server = tls.createServer({ key, cert }, (client) => {
    const upstream = net.connect(upstreamPort, "127.0.0.1");
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  server.on("tlsClientError", () => {
    state.handshakeFailures++;
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get handshakeFailures() {
      return state.handshakeFailures;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
