// The local issuer fixture itself: its tokens carry GitHub Actions' claim set as GitHub
// shapes it, and its stand-in for the Actions ID-token endpoint answers as GitHub's does.
import { afterEach, beforeEach, expect, test } from "@jest/globals";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { createOidcVerifier } from "../../src/oidc/oidc-verifier.ts";
import { createTestClock } from "../harness.ts";
import { startLocalIssuer, type LocalIssuer } from "./local-issuer.ts";

let idp: LocalIssuer;
const clock = createTestClock();

beforeEach(async () => {
  idp = await startLocalIssuer({ clock });
});

afterEach(async () => {
  await idp.close();
});

test("when a token is issued, then it has GitHub's header and claims: ids as strings, nbf = iat − 600, exp = iat + 300", async () => {
  const token = await idp.token({ environment: undefined, event_name: "pull_request_target" }, { audience: "acme.keyward.test" });
  expect(decodeProtectedHeader(token)).toEqual({ alg: "RS256", typ: "JWT", kid: idp.currentKid });
  const claims = decodeJwt(token);
  const iat = Math.floor(clock.now().getTime() / 1000);
  expect(claims).toMatchObject({ iss: idp.issuer, aud: "acme.keyward.test", iat, nbf: iat - 600, exp: iat + 300, event_name: "pull_request_target" });
  for (const id of ["repository_id", "repository_owner_id", "run_id", "run_number", "run_attempt", "actor_id"]) expect(typeof claims[id]).toBe("string");
  expect(claims).not.toHaveProperty("environment");
});

test("when the Actions endpoint is asked with its request token, then it answers {value} for the requested audience; without it, 401", async () => {
  const { url, requestToken } = idp.actionsTokenEndpoint({ ref: "refs/heads/dev" });
  const audience = "acme.keyward.test";
  const refused = await fetch(`${url}&audience=${audience}`);
  expect(refused.status).toBe(401);
  await refused.body?.cancel();
  const res = await fetch(`${url}&audience=${encodeURIComponent(audience)}`, { headers: { authorization: `Bearer ${requestToken}` } });
  expect(res.status).toBe(200);
  const { value } = (await res.json()) as { value: string };
  const verifier = createOidcVerifier({ issuers: [idp.issuer], clock });
  try {
    expect((await verifier.verify(value, audience)).claims["ref"]).toBe("refs/heads/dev");
  } finally {
    verifier.stop();
  }
  expect(idp.requests.actions).toBe(2);
});
