// A request-counting HTTP proxy for the S3 bench rows, as a child process (the harness
// blocks in synchronous child runs, so it cannot serve requests itself):
//   node s3-count-proxy.mjs UPSTREAM_PORT   → prints {"port":N}
// GET /__counts answers the counts so far as JSON (and is not counted).
import http from "node:http";

const upstream = Number(process.argv[2]);
const counts = { total: 0, GET: 0, PUT: 0, HEAD: 0, DELETE: 0, POST: 0, bytesIn: 0, bytesOut: 0 };
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const server = http.createServer((req, res) => {
  if (req.url === "/__counts") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(counts));
    return;
  }
  counts.total++;
  counts[req.method] = (counts[req.method] ?? 0) + 1;
  const up = http.request({
    host: "127.0.0.1",
    port: upstream,
    method: req.method,
    path: req.url,
    headers: req.headers,
    agent,
  });
  up.on("response", (ur) => {
    res.writeHead(ur.statusCode ?? 502, ur.headers);
    ur.on("data", (d) => {
      counts.bytesOut += d.length; // server → tool (downloads)
    });
    ur.pipe(res);
  });
  up.on("error", () => res.destroy());
  req.on("data", (d) => {
    counts.bytesIn += d.length; // tool → server (uploads)
  });
  req.pipe(up);
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on("SIGTERM", () => process.exit(0));
