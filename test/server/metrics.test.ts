// GET /metrics (issue 12, item 5): every call is counted once by procedure and code, also
// when refused before a handler, unknown paths as `unknown`; VerifyKey verdicts; durations;
// pool, last-used and process metrics; the exposition parses; no secret, key id, tenant or
// path ever appears in it; GET and HEAD only; each instance counts only its own calls.
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Code } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import { registerCacheMetrics, registerInvalidationMetrics } from "../../src/metrics.ts";
import { createTestTenant, startTestServer, withKey, type TestServer, type TestTenant } from "../harness.ts";
import { keyIdOf, keys, rpcError, server, useServer } from "../rpc.ts";
import { connectUnary } from "./raw-http.ts";

useServer();

const verifyKey = "keyward.v1.KeyService/VerifyKey";
const createKey = "keyward.v1.KeyService/CreateKey";

/** One sample line: metric name, labels, value. */
type Sample = { name: string; labels: Record<string, string>; value: number };
/** A parsed exposition: families by name (type and help) and every sample. */
type Exposition = { families: Map<string, { type: string; help: string }>; samples: Sample[] };

/**
 * Parses the Prometheus text format 0.0.4 strictly: every line is HELP, TYPE, blank or a
 * sample of a declared family (histograms: `_bucket`, `_sum`, `_count`) with a numeric value.
 * Throws on anything else.
 */
function parseExposition(text: string): Exposition {
  const families = new Map<string, { type: string; help: string }>();
  const samples: Sample[] = [];
  const helps = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (help !== null) {
      helps.set(help[1]!, help[2]!);
      continue;
    }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type !== null) {
      families.set(type[1]!, { type: type[2]!, help: helps.get(type[1]!) ?? "" });
      continue;
    }
    // prom-client writes NaN as `Nan`; Prometheus reads floats with Go's ParseFloat, which takes any case.
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|[+-]Inf|NaN|Nan)$/.exec(line);
    if (sample === null) throw new Error(`not a line of the Prometheus text format: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    const rest = (sample[2] ?? "").replace(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g, (_, k: string, v: string) => {
      labels[k] = v.replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");
      return "";
    });
    if (rest !== "") throw new Error(`bad labels in ${JSON.stringify(line)}`);
    const name = sample[1]!;
    const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ""));
    if (family === undefined) throw new Error(`sample of an undeclared family: ${name}`);
    samples.push({ name, labels, value: /^nan$/i.test(sample[3]!) ? Number.NaN : Number(sample[3]!.replace("Inf", "Infinity")) });
  }
  return { families, samples };
}

async function scrape(s: TestServer = server): Promise<{ text: string; parsed: Exposition; contentType: string | null }> {
  const res = await fetch(`${s.url}/metrics`, { signal: AbortSignal.timeout(5000) });
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, parsed: parseExposition(text), contentType: res.headers.get("content-type") };
}

/** The value of the sample `name` whose labels include `labels` (0 when absent). */
function valueOf(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  const found = e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value ?? 0;
}

let tenant: TestTenant;
let validKey: string;

beforeAll(async () => {
  tenant = await createTestTenant(server);
  const created = await keys.createKey(
    { parent: `tenants/${tenant.slug}`, displayName: "metrics probe", permissions: ["keys:read"], org: "", expireDays: 30 },
    withKey(tenant.adminKey),
  );
  validKey = created.secret;
});

describe("GET /metrics", () => {
  test("when calls are made, then each is counted once by procedure and code, refused and unknown ones included, with its verdict and duration", async () => {
    const before = (await scrape()).parsed;
    // Answered by the handler: one valid key, one malformed one.
    await keys.verifyKey({ key: validKey, requiredPermissions: [], org: "" });
    await keys.verifyKey({ key: "not-a-key", requiredPermissions: [], org: "" });
    // Refused by the authentication interceptor.
    const unauthenticated = await rpcError(keys.createKey({ parent: `tenants/${tenant.slug}`, displayName: "x", permissions: [], org: "", expireDays: 1 }));
    expect(unauthenticated.code).toBe(Code.Unauthenticated);
    // Refused by connect before any interceptor (an unknown JSON field), logged by the transport guard.
    const refused = await connectUnary(server.url, `/${verifyKey}`, JSON.stringify({ key: "x", notAField: 1 }), { contentType: "application/json" });
    expect(refused.error?.code).toBe(Code.InvalidArgument);
    // A path that names no RPC (with something secret-looking in it).
    const unknown = await connectUnary(server.url, `/keyward.v1.KeyService/${validKey}`, "{}", { contentType: "application/json" });
    expect(unknown.status).toBe(404);

    const after = (await scrape()).parsed;
    const delta = (name: string, labels: Record<string, string>) => valueOf(after, name, labels) - valueOf(before, name, labels);
    expect(delta("keyward_rpc_calls_total", { method: verifyKey, code: "OK" })).toBe(2);
    expect(delta("keyward_rpc_calls_total", { method: verifyKey, code: "InvalidArgument" })).toBe(1);
    expect(delta("keyward_rpc_calls_total", { method: createKey, code: "Unauthenticated" })).toBe(1);
    expect(delta("keyward_rpc_calls_total", { method: "unknown", code: "Unimplemented" })).toBe(1);
    expect(delta("keyward_verify_results_total", { result: "valid" })).toBe(1);
    expect(delta("keyward_verify_results_total", { result: "malformed" })).toBe(1);
    // The duration histogram counts every call of the procedure, whatever its code.
    expect(delta("keyward_rpc_duration_seconds_count", { method: verifyKey })).toBe(3);
    expect(delta("keyward_rpc_duration_seconds_bucket", { method: verifyKey, le: "+Inf" })).toBe(3);
    expect(delta("keyward_rpc_duration_seconds_sum", { method: verifyKey })).toBeGreaterThan(0);
    // Labels are bounded: procedures of this server, `unknown`, code names.
    const methods = new Set(after.samples.filter((s) => s.name === "keyward_rpc_calls_total").map((s) => s.labels["method"]));
    for (const m of methods) expect(m === "unknown" || /^[a-z.]+\.v1\.[A-Za-z]+\/[A-Za-z]+$|^grpc\.health\.v1\.Health\/[A-Za-z]+$/.test(m ?? "")).toBe(true);
  });

  test("when a gRPC call is made, then it is counted like a Connect one", async () => {
    const before = (await scrape()).parsed;
    await server.client(KeyService, server.grpcTransport).verifyKey({ key: validKey, requiredPermissions: ["policies:write"], org: "" });
    const after = (await scrape()).parsed;
    expect(valueOf(after, "keyward_rpc_calls_total", { method: verifyKey, code: "OK" }) - valueOf(before, "keyward_rpc_calls_total", { method: verifyKey, code: "OK" })).toBe(1);
    expect(
      valueOf(after, "keyward_verify_results_total", { result: "insufficient_permissions" }) - valueOf(before, "keyward_verify_results_total", { result: "insufficient_permissions" }),
    ).toBe(1);
  });

  test("when the exposition is read, then it is the Prometheus text format with the pool, last-used, process and histogram families", async () => {
    await keys.verifyKey({ key: validKey, requiredPermissions: [], org: "" });
    await server.flushLastUsed();
    const { parsed, contentType } = await scrape();
    expect(contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
    const types = Object.fromEntries([...parsed.families].map(([name, f]) => [name, f.type]));
    expect(types).toMatchObject({
      keyward_rpc_calls_total: "counter",
      keyward_rpc_duration_seconds: "histogram",
      keyward_verify_results_total: "counter",
      keyward_last_used_batch_size: "histogram",
      keyward_db_pool_connections: "gauge",
      keyward_db_pool_waiting: "gauge",
      keyward_db_pool_max_connections: "gauge",
      process_cpu_user_seconds_total: "counter",
      nodejs_eventloop_lag_seconds: "gauge",
    });
    for (const [name, f] of parsed.families) expect({ name, help: f.help.length > 0 }).toEqual({ name, help: true });
    expect(valueOf(parsed, "keyward_last_used_batch_size_count")).toBeGreaterThanOrEqual(1);
    expect(valueOf(parsed, "keyward_db_pool_connections", { state: "idle" }) + valueOf(parsed, "keyward_db_pool_connections", { state: "in_use" })).toBeGreaterThanOrEqual(1);
    expect(valueOf(parsed, "keyward_db_pool_max_connections")).toBeGreaterThanOrEqual(2);
    // Buckets are cumulative and end at the count.
    const buckets = parsed.samples.filter((s) => s.name === "keyward_rpc_duration_seconds_bucket" && s.labels["method"] === verifyKey);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(buckets.at(-1)?.labels["le"]).toBe("+Inf");
    expect(buckets.at(-1)?.value).toBe(valueOf(parsed, "keyward_rpc_duration_seconds_count", { method: verifyKey }));
  });

  test("when calls carry keys and tokens in headers, bodies and paths, then none of them, nor key ids or tenants, appears in the exposition", async () => {
    const forgedPath = `/keyward.v1.KeyService/VerifyKey/${tenant.adminKey}`;
    await connectUnary(server.url, forgedPath, "{}", { contentType: "application/json", headers: { authorization: `Bearer ${tenant.adminKey}` } });
    expect((await keys.listKeys({ parent: `tenants/${tenant.slug}`, pageSize: 10 }, withKey(tenant.adminKey))).keys.length).toBeGreaterThan(0);
    await keys.verifyKey({ key: validKey, requiredPermissions: [], org: "" });
    await rpcError(keys.createKey({ parent: `tenants/${tenant.slug}`, displayName: "x", permissions: [], org: "", expireDays: 1 }, withKey(`${validKey}x`)));
    const { text } = await scrape();
    for (const secret of [tenant.adminKey, validKey, keyIdOf(validKey), keyIdOf(tenant.adminKey), tenant.slug, forgedPath]) {
      expect({ secret, found: text.includes(secret) }).toEqual({ secret, found: false });
    }
  });

  test("when /metrics is asked with HEAD, then it answers 200 with the headers and no body; any other method gets 405", async () => {
    const head = await fetch(`${server.url}/metrics`, { method: "HEAD", signal: AbortSignal.timeout(5000) });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(await head.text()).toBe("");
    for (const method of ["POST", "PUT", "DELETE"]) {
      const res = await fetch(`${server.url}/metrics`, { method, body: method === "DELETE" ? null : "x", signal: AbortSignal.timeout(5000) });
      expect({ method, status: res.status }).toEqual({ method, status: 405 });
    }
    // A query string does not change the answer.
    const withQuery = await fetch(`${server.url}/metrics?name[]=x`, { signal: AbortSignal.timeout(5000) });
    expect(withQuery.status).toBe(200);
    parseExposition(await withQuery.text());
  });

  test("when /metrics is asked over HTTP/2 (h2c), then it answers the same exposition", async () => {
    const http2 = await import("node:http2");
    const session = http2.connect(server.url);
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ":path": "/metrics", ":method": "GET" });
        let status = 0;
        let body = "";
        req.on("response", (h) => (status = Number(h[":status"])));
        req.setEncoding("utf8");
        req.on("data", (d: string) => (body += d));
        req.on("end", () => resolve({ status, body }));
        req.on("error", reject);
        req.setTimeout(5000, () => reject(new Error("no answer")));
      });
      expect(status).toBe(200);
      expect(parseExposition(body).families.has("keyward_rpc_calls_total")).toBe(true);
    } finally {
      session.close();
    }
  });
});

describe("one registry per instance", () => {
  let other: TestServer | undefined;
  afterAll(() => other?.stop());

  test("when two servers run in one process, then each counts only its own calls", async () => {
    other = await startTestServer();
    const mineBefore = valueOf((await scrape()).parsed, "keyward_rpc_calls_total", { method: verifyKey, code: "OK" });
    for (let i = 0; i < 3; i++) await other.client(KeyService).verifyKey({ key: "nope", requiredPermissions: [], org: "" });
    expect(valueOf((await scrape(other)).parsed, "keyward_rpc_calls_total", { method: verifyKey, code: "OK" })).toBe(3);
    expect(valueOf((await scrape()).parsed, "keyward_rpc_calls_total", { method: verifyKey, code: "OK" })).toBe(mineBefore);
  });
});

describe("cache and invalidation metrics", () => {
  test("when a served key is verified twice and then revoked, then the live server's cache, listener and lag metrics move", async () => {
    const { secret } = await keys.createKey(
      { parent: `tenants/${tenant.slug}`, displayName: "cache probe", permissions: ["keys:read"], org: "", expireDays: 30 },
      withKey(tenant.adminKey),
    );
    const before = (await scrape()).parsed;
    await keys.verifyKey({ key: secret, requiredPermissions: [], org: "" });
    await keys.verifyKey({ key: secret, requiredPermissions: [], org: "" });
    await keys.revokeKey({ name: `tenants/${tenant.slug}/keys/${keyIdOf(secret)}`, reason: "probe" }, withKey(tenant.adminKey));
    const after = (await scrape()).parsed;
    expect(valueOf(after, "keyward_verify_cache_hits_total") - valueOf(before, "keyward_verify_cache_hits_total")).toBeGreaterThanOrEqual(1);
    expect(valueOf(after, "keyward_verify_cache_misses_total") - valueOf(before, "keyward_verify_cache_misses_total")).toBeGreaterThanOrEqual(1);
    expect(valueOf(after, "keyward_verify_cache_evictions_total")).toBeGreaterThan(valueOf(before, "keyward_verify_cache_evictions_total"));
    expect(valueOf(after, "keyward_verify_cache_entries")).toBeGreaterThan(0);
    expect(valueOf(after, "keyward_listen_connected")).toBe(1);
    expect(valueOf(after, "keyward_invalidation_lag_seconds_count")).toBeGreaterThan(valueOf(before, "keyward_invalidation_lag_seconds_count"));
  });

  test("when the cache's and the listener's state change, then a scrape reads them as they are now", async () => {
    const registry = new Registry();
    const stats = { hits: 0, misses: 0, evictions: 0, entries: 0, bytes: 0 };
    let connected = false;
    registerCacheMetrics(registry, () => stats);
    const { observeInvalidationLag } = registerInvalidationMetrics(registry, () => ({ connected, reconnects: 2 }));
    Object.assign(stats, { hits: 10, misses: 3, evictions: 1, entries: 2, bytes: 512 });
    connected = true;
    observeInvalidationLag(0.004);
    observeInvalidationLag(-1); // clock skew between hosts counts as no lag
    let parsed = parseExposition(await registry.metrics());
    expect(valueOf(parsed, "keyward_verify_cache_hits_total")).toBe(10);
    expect(valueOf(parsed, "keyward_verify_cache_misses_total")).toBe(3);
    expect(valueOf(parsed, "keyward_verify_cache_evictions_total")).toBe(1);
    expect(valueOf(parsed, "keyward_verify_cache_entries")).toBe(2);
    expect(valueOf(parsed, "keyward_verify_cache_bytes")).toBe(512);
    expect(valueOf(parsed, "keyward_listen_connected")).toBe(1);
    expect(valueOf(parsed, "keyward_listen_reconnects_total")).toBe(2);
    expect(valueOf(parsed, "keyward_invalidation_lag_seconds_count")).toBe(2);
    expect(valueOf(parsed, "keyward_invalidation_lag_seconds_bucket", { le: "0.001" })).toBe(1);
    expect(valueOf(parsed, "keyward_invalidation_lag_seconds_bucket", { le: "0.005" })).toBe(2);
    expect(parsed.families.get("keyward_verify_cache_hits_total")?.type).toBe("counter");
    // A later scrape reports the new totals, not their sum with the old ones.
    Object.assign(stats, { hits: 15, entries: 1 });
    connected = false;
    parsed = parseExposition(await registry.metrics());
    expect(valueOf(parsed, "keyward_verify_cache_hits_total")).toBe(15);
    expect(valueOf(parsed, "keyward_verify_cache_entries")).toBe(1);
    expect(valueOf(parsed, "keyward_listen_connected")).toBe(0);
  });
});
