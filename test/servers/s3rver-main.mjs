// Runs s3rver as a child process: node --openssl-legacy-provider s3rver-main.mjs DIR BUCKET...
// Prints {"port":N} on stdout once listening. The legacy provider is needed because
// s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has
// there: without it every truncated listing (pagination) answers 500 InternalError.
import S3rver from "s3rver";

const [directory, ...buckets] = process.argv.slice(2);
const server = new S3rver({
  address: "127.0.0.1",
  port: 0,
  silent: true,
  directory,
  configureBuckets: buckets.map((name) => ({ name })),
});
const addr = await server.run();
process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
process.on("SIGTERM", () => server.close().finally(() => process.exit(0)));
