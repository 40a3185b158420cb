// Fetching and caching the issuer's keys, through the verifier, against a real local issuer
// over HTTP: an issuer down, slow or answering 10 MB makes verification Unavailable within a
// bound; the last good set serves through an outage for its grace and not after; unknown
// kids (one or a flood) refetch at most once per cool-down; rotation is picked up by one
// refetch; keys come only from the issuer's own origin. Time moves by the test clock.
import { afterEach, beforeEach, describe, expect, test } from "@jest/globals";
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { KeywardError } from "../../src/errors.ts";
import type { OidcVerifier } from "../../src/oidc/id-token.ts";
import { createLogger } from "../../src/logger.ts";
import { createOidcVerifier, type OidcVerifierOptions } from "../../src/oidc/oidc-verifier.ts";
import { createTestClock, type TestClock } from "../harness.ts";
import { within } from "../wait.ts";
import { startLocalIssuer, type LocalIssuer } from "./local-issuer.ts";

const audience = "acme.keyward.test";
const second = 1_000;
const minute = 60_000;

let clock: TestClock;
let idp: LocalIssuer;
let verifier: OidcVerifier;
let logs: string[];

beforeEach(async () => {
  clock = createTestClock();
  idp = await startLocalIssuer({ clock: { now: () => clock.now() } });
  logs = [];
  verifier = make();
});

afterEach(async () => {
  verifier.stop();
  await idp.close();
});

/** A verifier of `idp` whose warnings land in `logs`. */
function make(opts: Partial<OidcVerifierOptions> = {}): OidcVerifier {
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  verifier?.stop();
  verifier = createOidcVerifier({ issuers: [idp.issuer], clock, logger: createLogger({ level: "warn", destination }), ...opts });
  return verifier;
}

/** A fresh token from the issuer, dated by the test clock. */
const fresh = (opts: Parameters<LocalIssuer["token"]>[1] = {}) => idp.token({}, { audience, ...opts });

/** The KeywardError a verification ends in (throws if it verified). */
async function refusal(p: Promise<unknown>): Promise<KeywardError> {
  const outcome = await p.then(
    () => ({ ok: true as const }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (outcome.ok) throw new Error("expected a refusal, but the token verified");
  if (!(outcome.e instanceof KeywardError)) throw outcome.e;
  return outcome.e;
}

/** Discovery and JWKS requests so far. */
const counts = () => ({ discovery: idp.requests.discovery, jwks: idp.requests.jwks });

describe("an issuer that cannot be reached", () => {
  test("when the issuer was never reachable, then UNAVAILABLE ISSUER_UNAVAILABLE; within the cool-down it is not asked again; once back it serves", async () => {
    idp.setMode({ kind: "down" });
    const token = await fresh();
    const e = await refusal(verifier.verify(token, audience));
    expect([e.kind, e.reason, e.metadata["issuer"]]).toEqual(["UNAVAILABLE", "ISSUER_UNAVAILABLE", idp.issuer]);
    expect(e.message).toContain(idp.issuer);
    expect(counts()).toEqual({ discovery: 1, jwks: 0 });

    idp.setMode({ kind: "ok" });
    clock.advance(29 * second);
    expect((await refusal(verifier.verify(token, audience))).reason).toBe("ISSUER_UNAVAILABLE");
    expect(counts()).toEqual({ discovery: 1, jwks: 0 });

    clock.advance(1 * second);
    await verifier.verify(await fresh(), audience);
    expect(counts()).toEqual({ discovery: 2, jwks: 1 });
    const warning = logs.find((l) => l.includes("could not fetch"));
    expect(warning).toContain(idp.issuer);
    expect(warning).not.toContain(token.split(".")[2]);
  });

  test("when the JWKS answers 503, then ISSUER_UNAVAILABLE saying HTTP 503", async () => {
    idp.setMode({ kind: "down", how: "503", on: "jwks" });
    const e = await refusal(verifier.verify(await fresh(), audience));
    expect(e.reason).toBe("ISSUER_UNAVAILABLE");
    expect(e.message).toContain("HTTP 503");
    expect(counts()).toEqual({ discovery: 1, jwks: 1 });
  });

  test("when the JWKS is slow, then the answer comes within the fetch timeout (ISSUER_UNAVAILABLE), not when the issuer answers", async () => {
    make({ fetchTimeoutMs: 300 });
    idp.setMode({ kind: "slow", delayMs: 30_000, on: "jwks" });
    const started = performance.now();
    const e = await within(3_000, refusal(verifier.verify(await fresh(), audience)), "the slow issuer's refusal");
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(e.reason).toBe("ISSUER_UNAVAILABLE");
    expect(e.message).toContain("no answer within 300 ms");
  });

  test("when the issuer answers slowly but within the timeout, then the token verifies", async () => {
    make({ fetchTimeoutMs: 3_000 });
    idp.setMode({ kind: "slow", delayMs: 100 });
    await within(3_000, verifier.verify(await fresh(), audience), "verifying against a slow issuer");
  });

  test("when the JWKS streams 10 MB (chunked, no length), then it is refused past 256 KiB, quickly", async () => {
    idp.setMode({ kind: "huge", on: "jwks" });
    const e = await within(3_000, refusal(verifier.verify(await fresh(), audience)), "refusing 10 MB");
    expect([e.kind, e.reason]).toEqual(["UNAVAILABLE", "ISSUER_UNAVAILABLE"]);
    expect(e.message).toContain(`more than ${256 * 1024} bytes`);
  });

  test("when the discovery document declares 10 MB in Content-Length, then it is refused before reading", async () => {
    idp.setMode({ kind: "huge", declareLength: true });
    const e = await within(3_000, refusal(verifier.verify(await fresh(), audience)), "refusing 10 MB");
    expect(e.reason).toBe("ISSUER_UNAVAILABLE");
    expect(e.message).toContain(`${10 * 1024 * 1024} bytes declared`);
    expect(counts()).toEqual({ discovery: 1, jwks: 0 });
  });

  test("when the caller's signal aborts while the issuer is slow, then the caller is released at once with the signal's reason", async () => {
    idp.setMode({ kind: "slow", delayMs: 30_000 });
    const signal = AbortSignal.timeout(100);
    const outcome = await within(2_000, verifier.verify(await fresh(), audience, signal).catch((e: unknown) => e), "the cancelled verification");
    expect(outcome).toBe(signal.reason);
  });
});

describe("the last good key set", () => {
  test("when refreshes fail, then the last good set serves for the 1 hour grace after its fetch, and not after", async () => {
    await verifier.verify(await fresh(), audience);
    idp.setMode({ kind: "down" });

    clock.advance(11 * minute); // stale: refresh in line, which fails
    await verifier.verify(await fresh(), audience);
    expect(counts()).toEqual({ discovery: 2, jwks: 1 });
    clock.advance(48 * minute); // 59 min after the fetch: still served, one more failed attempt
    await verifier.verify(await fresh(), audience);
    expect(counts()).toEqual({ discovery: 3, jwks: 1 });

    clock.advance(2 * minute); // 61 min
    const e = await refusal(verifier.verify(await fresh(), audience));
    expect([e.kind, e.reason]).toEqual(["UNAVAILABLE", "ISSUER_UNAVAILABLE"]);
    expect(e.message).toContain("grace");

    idp.setMode({ kind: "ok" });
    clock.advance(31 * second);
    await verifier.verify(await fresh(), audience);
    expect(counts()).toEqual({ discovery: 5, jwks: 2 });
  });

  test("when the set is fresh, then nothing is fetched; after 10 minutes the next verification refreshes once", async () => {
    await verifier.verify(await fresh(), audience);
    clock.advance(9 * minute);
    await verifier.verify(await fresh(), audience);
    expect(counts()).toEqual({ discovery: 1, jwks: 1 });
    clock.advance(1 * minute);
    await Promise.all([verifier.verify(await fresh(), audience), verifier.verify(await fresh(), audience)]);
    expect(counts()).toEqual({ discovery: 2, jwks: 2 });
  });

  test("when a kid is unknown and the refresh fails, then ISSUER_UNAVAILABLE (the key may be new), not UNKNOWN_SIGNING_KEY", async () => {
    await verifier.verify(await fresh(), audience);
    await idp.rotate();
    idp.setMode({ kind: "down" });
    clock.advance(31 * second);
    const e = await refusal(verifier.verify(await fresh(), audience));
    expect(e.reason).toBe("ISSUER_UNAVAILABLE");
    expect(e.message).toContain(idp.currentKid);
  });
});

describe("unknown kids", () => {
  test("when a token names a kid the issuer does not publish, then one refetch after the cool-down, and UNKNOWN_SIGNING_KEY", async () => {
    await verifier.verify(await fresh(), audience);
    const stranger = await fresh({ key: "stranger" });
    const first = await refusal(verifier.verify(stranger, audience));
    expect([first.reason, first.metadata["kid"]]).toEqual(["UNKNOWN_SIGNING_KEY", "stranger"]);
    expect(counts()).toEqual({ discovery: 1, jwks: 1 }); // within the cool-down: no refetch

    clock.advance(30 * second);
    expect((await refusal(verifier.verify(stranger, audience))).reason).toBe("UNKNOWN_SIGNING_KEY");
    expect(counts()).toEqual({ discovery: 2, jwks: 2 });
    expect((await refusal(verifier.verify(stranger, audience))).reason).toBe("UNKNOWN_SIGNING_KEY");
    expect(counts()).toEqual({ discovery: 2, jwks: 2 });
  });

  test("when 50 verifications with random kids arrive at once, then the issuer sees at most one JWKS fetch", async () => {
    await verifier.verify(await fresh(), audience);
    clock.advance(31 * second);
    const tokens = await Promise.all(Array.from({ length: 50 }, () => fresh({ header: { kid: randomUUID() } })));
    const refusals = await within(5_000, Promise.all(tokens.map((t) => refusal(verifier.verify(t, audience)))), "the flood");
    expect(new Set(refusals.map((e) => e.reason))).toEqual(new Set(["UNKNOWN_SIGNING_KEY"]));
    expect(counts()).toEqual({ discovery: 2, jwks: 2 });

    // A second flood inside the cool-down fetches nothing.
    await Promise.all(tokens.map((t) => refusal(verifier.verify(t, audience))));
    expect(counts()).toEqual({ discovery: 2, jwks: 2 });
  });

  test("when 50 verifications arrive before any key is cached, then they share one fetch", async () => {
    const tokens = await Promise.all(Array.from({ length: 50 }, () => fresh()));
    await within(5_000, Promise.all(tokens.map((t) => verifier.verify(t, audience))), "50 first verifications");
    expect(counts()).toEqual({ discovery: 1, jwks: 1 });
  });
});

describe("rotation and origin", () => {
  test("when the issuer rotates, then the new kid is picked up by one refetch and old tokens verify while the old key is published", async () => {
    const old = await fresh();
    await verifier.verify(old, audience);
    const oldKid = idp.currentKid;
    await idp.rotate();
    clock.advance(31 * second);
    const rotated = await fresh();
    await verifier.verify(rotated, audience);
    expect(counts()).toEqual({ discovery: 2, jwks: 2 });
    await verifier.verify(old, audience);
    expect(counts()).toEqual({ discovery: 2, jwks: 2 });

    // Rotating again without keeping the previous key withdraws it: once a refetch sees
    // that, its tokens no longer verify; the first key, still published, still serves.
    const withdrawn = idp.currentKid;
    await idp.rotate({ keepOld: false });
    expect(idp.publishedKids()).toEqual([oldKid, idp.currentKid]);
    clock.advance(31 * second);
    await verifier.verify(await fresh(), audience);
    expect(counts()).toEqual({ discovery: 3, jwks: 3 });
    const e = await refusal(verifier.verify(rotated, audience));
    expect([e.reason, e.metadata["kid"]]).toEqual(["UNKNOWN_SIGNING_KEY", withdrawn]);
    await verifier.verify(old, audience);
    expect(counts()).toEqual({ discovery: 3, jwks: 3 });
  });

  test("when discovery names a jwks_uri on another origin, then ISSUER_UNAVAILABLE and that origin receives nothing", async () => {
    const elsewhere = await startLocalIssuer({ clock });
    try {
      idp.setDiscovery({ jwks_uri: `${elsewhere.issuer}/.well-known/jwks` });
      const e = await refusal(verifier.verify(await fresh(), audience));
      expect(e.reason).toBe("ISSUER_UNAVAILABLE");
      expect(e.message).toContain("not on the issuer's origin");
      expect(elsewhere.requests).toEqual({ discovery: 0, jwks: 0, actions: 0, other: 0 });
    } finally {
      await elsewhere.close();
    }
  });

  test("when the JWKS redirects elsewhere, then the redirect is not followed (ISSUER_UNAVAILABLE)", async () => {
    const elsewhere = await startLocalIssuer({ clock });
    try {
      idp.setDiscovery({ jwks_uri: `${idp.issuer}/moved` });
      idp.setRedirect("/moved", `${elsewhere.issuer}/.well-known/jwks`);
      const e = await refusal(verifier.verify(await fresh(), audience));
      expect(e.reason).toBe("ISSUER_UNAVAILABLE");
      expect(elsewhere.requests.jwks).toBe(0);
    } finally {
      await elsewhere.close();
    }
  });

  test("when discovery's issuer differs from the configured one, or jwks_uri is missing, then ISSUER_UNAVAILABLE", async () => {
    idp.setDiscovery({ issuer: "https://token.actions.githubusercontent.com" });
    expect((await refusal(verifier.verify(await fresh(), audience))).message).toContain('"issuer"');
    idp.setDiscovery({ jwks_uri: undefined });
    clock.advance(30 * second);
    expect((await refusal(verifier.verify(await fresh(), audience))).message).toContain('"jwks_uri" is missing');
  });
});
