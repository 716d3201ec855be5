// An HTTP proxy between coffer and the S3 server that injects the faults a real network
// and a busy service produce, on the requests a test picks: a connection dropped
// mid-upload, 503 SlowDown, slow or stalled responses, GET bodies cut short, and a byte
// flipped in an upload. It also records every request (method, path, headers) so tests
// can count requests and check what coffer sent.
import * as http from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type FaultKind =
  | "drop-upload" // close the connection after half the request body
  | "slow-down" // answer 503 SlowDown without passing the request on
  | "slow" // pass on, but hold the response for delayMs
  | "stall" // pass on, never answer (the client must time out)
  | "truncate-body" // send the headers and half the body, then close
  | "corrupt-upload"; // flip one byte of the request body on its way to the server

export interface FaultRule {
  kind: FaultKind;
  method?: string;
  /** Matched against the request path (/BUCKET/PREFIX/data/XX/ID...). */
  path?: RegExp;
  /** How many matching requests get the fault; then the rule is spent. */
  times: number;
  delayMs?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  fault?: FaultKind;
}

export interface FaultProxy {
  port: number;
  /** Rules are tried in order; the first that matches a request (and is not spent) applies. */
  rules: FaultRule[];
  requests: RecordedRequest[];
  /** Faults injected so far. */
  injected(): number;
  close(): Promise<void>;
}

function takeRule(rules: FaultRule[], req: http.IncomingMessage): FaultRule | undefined {
  const rule = rules.find(
    (r) =>
      r.times > 0 &&
      (r.method === undefined || r.method === req.method) &&
      (r.path === undefined || r.path.test(req.url ?? "")),
  );
  if (rule) rule.times--;
  return rule;
}

const slowDownBody =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

export async function startFaultProxy(upstreamPort: number): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  const requests: RecordedRequest[] = [];
  let injected = 0;
  // One object: the server reads proxy.rules on each request, so a test may replace it.
  const proxy: FaultProxy = {
    port: 0,
    rules: [],
    requests,
    injected: () => injected,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    const rule = takeRule(proxy.rules, req);
    const kind = rule?.kind;
    if (kind) injected++;
    requests.push({
      method: req.method ?? "",
      path: req.url ?? "",
      headers: req.headers,
      fault: kind,
    });
    if (kind === "slow-down") {
      req.resume();
      req.on("end", () => {
        res.writeHead(503, { "content-type": "application/xml" });
        res.end(slowDownBody);
      });
      return;
    }
    const up = http.request({
      host: "127.0.0.1",
      port: upstreamPort,
      method: req.method,
      path: req.url,
      headers: req.headers,
    });
    up.on("error", () => res.destroy());
    res.on("close", () => {
      if (!res.writableFinished) up.destroy();
    });
    const length = Number(req.headers["content-length"] ?? 0);
    let sent = 0;
    let flipped = false;
    req.on("data", (chunk: Buffer) => {
      if (kind === "drop-upload" && sent + chunk.length > length / 2) {
        req.socket.destroy();
        up.destroy();
        return;
      }
      if (kind === "corrupt-upload" && !flipped && chunk.length > 0) {
        chunk = Buffer.from(chunk);
        chunk[0] = (chunk[0] as number) ^ 0x01;
        flipped = true;
      }
      sent += chunk.length;
      up.write(chunk);
    });
    req.on("end", () => up.end());
    up.on("response", (ur) => {
      if (kind === "stall") {
        ur.resume();
        return;
      }
      const respond = () => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (kind !== "truncate-body") {
          ur.pipe(res);
          return;
        }
        const total = Number(ur.headers["content-length"] ?? 0);
        let passed = 0;
        ur.on("data", (chunk: Buffer) => {
          const room = Math.floor(total / 2) - passed;
          if (room <= 0) return;
          const part = chunk.subarray(0, room);
          passed += part.length;
          res.write(part);
          if (passed >= Math.floor(total / 2)) {
            // Flush what was written, then cut the connection mid-body.
            res.socket?.end(() => res.socket?.destroy());
            ur.destroy();
          }
        });
        ur.on("end", () => res.end());
      };
      if (kind === "slow") setTimeout(respond, rule?.delayMs ?? 500);
      else respond();
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  proxy.port = (server.address() as AddressInfo).port;
  return proxy;
}
