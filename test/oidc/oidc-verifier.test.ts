// The OIDC ID-token verifier against a real local issuer over HTTP (no fetch mocks): a
// GitHub-shaped token verifies and yields its claims and SHA-256; every bad or hostile token
// is refused with its precise reason, without the token in the message, and the refusals
// that need no keys make no network call.
import { afterEach, beforeEach, describe, expect, test } from "@jest/globals";
import { createHash } from "node:crypto";
import { KeywardError } from "../../src/errors.ts";
import type { OidcVerifier } from "../../src/oidc/id-token.ts";
import { createOidcVerifier, maxIdTokenLength } from "../../src/oidc/oidc-verifier.ts";
import { createTestClock, type TestClock } from "../harness.ts";
import { within } from "../wait.ts";
import { startLocalIssuer, tamper, truncate, type LocalIssuer } from "./local-issuer.ts";

const audience = "acme.keyward.test";

let clock: TestClock;
let idp: LocalIssuer;
let verifier: OidcVerifier;

beforeEach(async () => {
  clock = createTestClock();
  idp = await startLocalIssuer({ clock: { now: () => clock.now() } });
  verifier = createOidcVerifier({ issuers: [idp.issuer], clock });
});

afterEach(async () => {
  verifier.stop();
  await idp.close();
});

/** The KeywardError a verification must end in; checks the token is not in its message. */
async function refusal(token: string, aud = audience): Promise<KeywardError> {
  const outcome = await verifier.verify(token, aud).then(
    () => ({ ok: true as const }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  if (outcome.ok) throw new Error("expected the token to be refused, but it verified");
  if (!(outcome.e instanceof KeywardError)) throw outcome.e;
  const signature = token.split(".")[2] ?? "";
  if (token.length > 16) expect(outcome.e.message).not.toContain(token);
  if (signature.length > 16) expect(outcome.e.message).not.toContain(signature);
  return outcome.e;
}

/** Requests the issuer has received so far (discovery + JWKS). */
const fetches = () => idp.requests.discovery + idp.requests.jwks;

describe("a valid token", () => {
  test("when a GitHub-shaped token is presented for its audience, then it verifies with its claims, times and SHA-256", async () => {
    const token = await idp.token({ groups: ["a"], private: true }, { audience });
    const v = await verifier.verify(token, audience);
    const iat = Math.floor(clock.now().getTime() / 1000);
    expect(v.issuer).toBe(idp.issuer);
    expect(v.subject).toBe("repo:acme/deploy:ref:refs/heads/main");
    expect(v.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(v.issuedAt.getTime()).toBe(iat * 1000);
    expect(v.expiresAt.getTime()).toBe((iat + 300) * 1000);
    expect(v.sha256).toBe(createHash("sha256").update(token).digest("hex"));
    expect(v.claims).toMatchObject({
      repository: "acme/deploy",
      repository_owner: "acme",
      repository_id: "123456789",
      repository_owner_id: "987654",
      job_workflow_ref: "acme/deploy/.github/workflows/deploy.yml@refs/heads/main",
      ref: "refs/heads/main",
      environment: "production",
      event_name: "push",
      run_id: "9876543210",
      aud: audience,
      iat: String(iat),
      nbf: String(iat - 600),
      jti: v.jti,
    });
    expect(v.claims).not.toHaveProperty("groups");
    expect(v.claims).not.toHaveProperty("private");
    expect(Object.isFrozen(v) && Object.isFrozen(v.claims)).toBe(true);
  });

  test("when the audience is a one-element array, then it verifies", async () => {
    const v = await verifier.verify(await idp.token({}, { audience: [audience] }), audience);
    expect(v.claims["repository"]).toBe("acme/deploy");
  });

  test("when the issuer signs with ES256 or EdDSA keys, then the tokens verify (any asymmetric algorithm)", async () => {
    await idp.rotate({ alg: "ES256" });
    expect((await verifier.verify(await idp.token({}, { audience }), audience)).subject).toContain("repo:");
    await idp.rotate({ alg: "EdDSA" });
    clock.advance(31_000);
    expect((await verifier.verify(await idp.token({}, { audience }), audience)).subject).toContain("repo:");
  });

  test("when the clock is past exp but within the 60 s leeway, then it still verifies", async () => {
    const token = await idp.token({}, { audience });
    clock.advance(359_000);
    await expect(verifier.verify(token, audience)).resolves.toMatchObject({ issuer: idp.issuer });
  });
});

describe("time", () => {
  test("when the token expired beyond the leeway, then TOKEN_EXPIRED", async () => {
    const token = await idp.token({}, { audience });
    clock.advance(361_000);
    const e = await refusal(token);
    expect([e.kind, e.reason]).toEqual(["UNAUTHENTICATED", "TOKEN_EXPIRED"]);
  });

  test("when nbf is beyond the leeway in the future, then TOKEN_NOT_YET_VALID", async () => {
    const iat = Math.floor(clock.now().getTime() / 1000) + 700; // nbf = now + 100
    const e = await refusal(await idp.token({}, { audience, iat }));
    expect(e.reason).toBe("TOKEN_NOT_YET_VALID");
  });

  test("when iat is beyond the leeway in the future (nbf in the past), then TOKEN_NOT_YET_VALID", async () => {
    const now = Math.floor(clock.now().getTime() / 1000);
    const e = await refusal(await idp.token({ nbf: now - 10 }, { audience, iat: now + 120 }));
    expect(e.reason).toBe("TOKEN_NOT_YET_VALID");
  });

  test("when a long-lived token was issued more than 10 minutes (plus leeway) ago, then TOKEN_TOO_OLD", async () => {
    const token = await idp.token({}, { audience, lifetimeSeconds: 3600 });
    clock.advance(9 * 60_000);
    await verifier.verify(token, audience);
    clock.advance(2 * 60_000 + 1_000);
    const e = await refusal(token);
    expect(e.reason).toBe("TOKEN_TOO_OLD");
  });

  test("when a dry run allows expired tokens, then an expired or too old token still verifies (signature, issuer, audience) and says expired; a fresh one says not expired; a forged expired one is still refused", async () => {
    const token = await idp.token({}, { audience });
    expect((await verifier.verify(token, audience, undefined, { allowExpired: true })).expired).toBe(false);
    clock.advance(3600_000);
    const v = await verifier.verify(token, audience, undefined, { allowExpired: true });
    expect([v.expired, v.claims["repository"]]).toEqual([true, "acme/deploy"]);
    expect((await refusal(token)).reason).toBe("TOKEN_EXPIRED");
    const e = await verifier.verify(tamper(token), audience, undefined, { allowExpired: true }).catch((err: unknown) => err);
    expect((e as KeywardError).reason).toBe("INVALID_SIGNATURE");
    const wrongAudience = await verifier.verify(token, "other.keyward.test", undefined, { allowExpired: true }).catch((err: unknown) => err);
    expect((wrongAudience as KeywardError).reason).toBe("AUDIENCE_MISMATCH");
  });

  test("when the leeway is configured outside 30–60 s, then creating the verifier fails", () => {
    expect(() => createOidcVerifier({ issuers: [idp.issuer], clock, leewaySeconds: 10 })).toThrow(RangeError);
    expect(() => createOidcVerifier({ issuers: [idp.issuer], clock, leewaySeconds: 61 })).toThrow(RangeError);
    createOidcVerifier({ issuers: [idp.issuer], clock, leewaySeconds: 30 }).stop();
  });
});

describe("issuer", () => {
  test("when iss differs from the configured issuer only by a trailing slash (either side), then it is that issuer: it verifies, named as configured", async () => {
    const v = await verifier.verify(await idp.token({ iss: `${idp.issuer}/` }, { audience }), audience);
    expect(v.issuer).toBe(idp.issuer);
    const slashed = createOidcVerifier({ issuers: [`${idp.issuer}/`], clock });
    try {
      expect((await slashed.verify(await idp.token({}, { audience }), audience)).issuer).toBe(`${idp.issuer}/`);
    } finally {
      slashed.stop();
    }
  });

  test("when iss shares only a prefix with the configured issuer, then ISSUER_NOT_TRUSTED and no request is made", async () => {
    for (const iss of [`${idp.issuer}.evil.example`, `${idp.issuer}/evil`, `${idp.issuer}//x`]) {
      const e = await refusal(await idp.token({ iss }, { audience }));
      expect([e.reason, e.metadata["issuer"]]).toEqual(["ISSUER_NOT_TRUSTED", iss]);
    }
    expect(fetches()).toBe(0);
  });

  test("when the token comes from an issuer not in the allowlist, then ISSUER_NOT_TRUSTED and that issuer receives zero requests", async () => {
    const other = await startLocalIssuer({ clock });
    try {
      const e = await refusal(await other.token({}, { audience }));
      expect(e.reason).toBe("ISSUER_NOT_TRUSTED");
      expect(e.message).toContain(other.issuer);
      expect(other.requests).toEqual({ discovery: 0, jwks: 0, actions: 0, other: 0 });
      expect(fetches()).toBe(0);
    } finally {
      await other.close();
    }
  });

  test("when iss is missing or not a string, then ISSUER_NOT_TRUSTED", async () => {
    expect((await refusal(await idp.token({ iss: undefined }, { audience }))).reason).toBe("ISSUER_NOT_TRUSTED");
    expect((await refusal(await idp.token({ iss: [idp.issuer] }, { audience }))).reason).toBe("ISSUER_NOT_TRUSTED");
  });
});

describe("audience", () => {
  test("when the audience is another tenant's, then AUDIENCE_MISMATCH naming the expected audience", async () => {
    const e = await refusal(await idp.token({}, { audience: "other.keyward.test" }));
    expect([e.kind, e.reason, e.metadata["expected"]]).toEqual(["UNAUTHENTICATED", "AUDIENCE_MISMATCH", audience]);
    expect(e.message).toContain("audience mismatch");
    expect(e.message).toContain(`"${audience}"`);
  });

  test("when aud is an array holding the audience and another, then AUDIENCE_MISMATCH", async () => {
    const e = await refusal(await idp.token({}, { audience: [audience, "other.keyward.test"] }));
    expect(e.reason).toBe("AUDIENCE_MISMATCH");
    expect(e.message).toContain(audience);
  });

  test("when aud is missing, then MISSING_CLAIM aud", async () => {
    const e = await refusal(await idp.token({ aud: undefined }));
    expect([e.reason, e.metadata["claim"]]).toEqual(["MISSING_CLAIM", "aud"]);
  });
});

describe("header", () => {
  test("when alg is none, then ALGORITHM_NOT_ALLOWED before any request", async () => {
    const e = await refusal(idp.algNone({}, { audience }));
    expect([e.reason, e.metadata["alg"]]).toEqual(["ALGORITHM_NOT_ALLOWED", "none"]);
    expect(fetches()).toBe(0);
  });

  test("when the token is HS256 keyed with the issuer's public key (PEM or JWK), then ALGORITHM_NOT_ALLOWED", async () => {
    for (const secret of ["pem", "jwk"] as const) {
      const e = await refusal(await idp.hs256WithPublicKey({}, { audience, secret }));
      expect([e.reason, e.metadata["alg"]]).toEqual(["ALGORITHM_NOT_ALLOWED", "HS256"]);
    }
    expect(fetches()).toBe(0);
  });

  test("when kid is missing or empty, then MISSING_KEY_ID", async () => {
    expect((await refusal(await idp.token({}, { audience, header: { kid: undefined } }))).reason).toBe("MISSING_KEY_ID");
    expect((await refusal(await idp.token({}, { audience, header: { kid: "" } }))).reason).toBe("MISSING_KEY_ID");
  });

  test("when the header names a key location or key (jku, x5u, jwk, x5c) or crit, then HEADER_NOT_ALLOWED and nothing is fetched from anywhere", async () => {
    const attacker = await startLocalIssuer({ clock });
    try {
      const jwkHeader = await attacker.publicJwk();
      const cases: Record<string, unknown> = {
        jku: `${attacker.issuer}/.well-known/jwks`,
        x5u: `${attacker.issuer}/cert.pem`,
        jwk: jwkHeader,
        x5c: ["MIIB"],
      };
      for (const [name, value] of Object.entries(cases)) {
        const e = await refusal(await attacker.token({ iss: idp.issuer }, { audience, header: { [name]: value } }));
        expect([e.reason, e.metadata["header"]]).toEqual(["HEADER_NOT_ALLOWED", name]);
      }
      const crit = await idp.token({}, { audience, header: { crit: ["x-rule"], "x-rule": 1 } });
      expect((await refusal(crit)).metadata).toEqual({ header: "crit" });
      expect(attacker.requests).toEqual({ discovery: 0, jwks: 0, actions: 0, other: 0 });
      expect(fetches()).toBe(0);
    } finally {
      await attacker.close();
    }
  });
});

describe("signature and shape", () => {
  test("when the payload is tampered with, then INVALID_SIGNATURE", async () => {
    const token = await idp.token({}, { audience });
    await verifier.verify(token, audience);
    const e = await refusal(tamper(token));
    expect(e.reason).toBe("INVALID_SIGNATURE");
  });

  test("when a key the issuer never published signs under the current kid, then INVALID_SIGNATURE", async () => {
    const e = await refusal(await idp.token({}, { audience, key: "stranger", header: { kid: idp.currentKid } }));
    expect(e.reason).toBe("INVALID_SIGNATURE");
  });

  test("when two published keys share a kid, then a token signed by either verifies and a tampered one does not", async () => {
    const first = await idp.token({}, { audience });
    await idp.rotate({ kid: idp.currentKid });
    expect(new Set(idp.publishedKids()).size).toBe(1);
    const second = await idp.token({}, { audience });
    await verifier.verify(first, audience);
    await verifier.verify(second, audience);
    expect((await refusal(tamper(second))).reason).toBe("INVALID_SIGNATURE");
  });

  test("when the token is truncated, then MALFORMED_TOKEN (cut in the payload) or INVALID_SIGNATURE (cut in the signature)", async () => {
    const token = await idp.token({}, { audience });
    expect((await refusal(truncate(token))).reason).toBe("MALFORMED_TOKEN");
    expect((await refusal(truncate(token, token.length - 10))).reason).toBe("INVALID_SIGNATURE");
  });

  test("when 100 kB of garbage (or of base64url dots) arrive, then MALFORMED_TOKEN at once, with no request", async () => {
    const garbage = "x".repeat(100_000);
    const e = await within(1_000, refusal(garbage), "refusing 100 kB");
    expect(e.reason).toBe("MALFORMED_TOKEN");
    expect(e.message).toContain(String(maxIdTokenLength));
    expect((await refusal(`${"a".repeat(50_000)}.${"b".repeat(50_000)}.c`)).reason).toBe("MALFORMED_TOKEN");
    expect(fetches()).toBe(0);
  });

  test("when the token is not three base64url segments or its parts are not JSON, then MALFORMED_TOKEN", async () => {
    const token = await idp.token({}, { audience });
    const [h, p, s] = token.split(".");
    for (const bad of ["", "abc", `${h}.${p}`, `${h}.${p}.${s}.x`, `${h}.${p}.${s}=`, `a b.${p}.${s}`, `${h}.bm90IGpzb24.${s}`, `bm90IGpzb24.${p}.${s}`]) {
      expect([bad.slice(0, 10), (await refusal(bad)).reason]).toEqual([bad.slice(0, 10), "MALFORMED_TOKEN"]);
    }
  });
});

describe("required claims", () => {
  test.each(["jti", "sub", "exp", "iat", "nbf"])("when %s is missing, then MISSING_CLAIM naming it", async (claim) => {
    const e = await refusal(await idp.token({ [claim]: undefined }, { audience }));
    expect([e.kind, e.reason, e.metadata["claim"]]).toEqual(["UNAUTHENTICATED", "MISSING_CLAIM", claim]);
  });

  test("when jti or sub is empty, then MISSING_CLAIM; when longer than 200 characters or not a string, then MALFORMED_TOKEN", async () => {
    expect((await refusal(await idp.token({ sub: "" }, { audience }))).metadata).toEqual({ claim: "sub" });
    expect((await refusal(await idp.token({ jti: "" }, { audience }))).reason).toBe("MISSING_CLAIM");
    const long = await refusal(await idp.token({ jti: "j".repeat(201) }, { audience }));
    expect([long.reason, long.metadata["claim"]]).toEqual(["MALFORMED_TOKEN", "jti"]);
    expect((await refusal(await idp.token({ sub: 42 }, { audience }))).reason).toBe("MALFORMED_TOKEN");
  });

  test("when exp is not a number, then MALFORMED_TOKEN naming it", async () => {
    const e = await refusal(await idp.token({ exp: "tomorrow" }, { audience }));
    expect([e.reason, e.metadata["claim"]]).toEqual(["MALFORMED_TOKEN", "exp"]);
  });
});
