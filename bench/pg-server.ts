// The cold-path reference: node:http plus one indexed SELECT per request on the same
// api_key table, through a pg pool of the same size as keyward's (pg's default, 10).
// The statement is the one keyward's key lookup runs (src/verify/key-lookup.ts: api_key by
// primary key, joined with its tenant, owner, org and bounding principals), so the ratio
// cold VerifyKey ÷ this server is what keyward adds around the database read.
// Request: POST with a JSON body {"key":"<raw key>"}; answer {"found":true|false}.
// Env: DATABASE_URL; BENCH_PG_PREPARED=0 (see below). Prints {"port":N} once listening on 127.0.0.1.
import http from "node:http";
import pg from "pg";
import { keyLookupQuery } from "../src/verify/key-lookup.ts";

// keyward's own statement, with pg's placeholder instead of MikroORM's.
const query = keyLookupQuery.replace("?", "$1");

/**
 * BENCH_PG_PREPARED=0 sends the statement as keyward does (MikroORM inlines the parameter and
 * uses the simple protocol, so PostgreSQL parses and plans the 5-table join on every call);
 * otherwise a named prepared statement, planned once per connection.
 */
const prepared = process.env["BENCH_PG_PREPARED"] !== "0";
/** A SQL string literal (standard_conforming_strings: only quotes are doubled). */
const literal = (s: string) => `'${s.replaceAll("'", "''")}'`;
const pool = new pg.Pool({ connectionString: process.env["DATABASE_URL"], max: 10 });
const found = Buffer.from('{"found":true}');
const missing = Buffer.from('{"found":false}');

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    let keyId = "";
    try {
      const key = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { key?: unknown }).key;
      keyId = typeof key === "string" ? (key.split("_")[1] ?? "") : "";
    } catch {
      keyId = "";
    }
    pool.query(prepared ? { text: query, values: [keyId], name: "lookup" } : { text: query.replace("$1", literal(keyId)) }).then(
      (r) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(r.rows.length > 0 ? found : missing);
      },
      () => {
        res.writeHead(503);
        res.end();
      },
    );
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === "object" && address !== null ? address.port : 0 })}\n`);
});
process.on("SIGTERM", () => {
  server.close();
  void pool.end().finally(() => process.exit(0));
});
