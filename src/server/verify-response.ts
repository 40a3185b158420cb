// VerifyKey's answer, built in one place for both paths that serve it: the connect handler
// (key-handlers.ts) and the fast path (verify-fast-path.ts).
import { create } from "@bufbuild/protobuf";
import { VerifyKeyResponseSchema, type VerifyKeyResponse } from "../../gen/keyward/v1/key_service_pb.ts";
import { keyKindOf, type VerifyOutcome } from "../verify/verifier.ts";
import { keyKinds, timestamp, verifyResults } from "./convert.ts";

/**
 * The VerifyKeyResponse for a verifier outcome (DESIGN.md §8): the result alone for
 * MALFORMED and NOT_FOUND; otherwise the credential's identity, effective permissions and,
 * for INSUFFICIENT_PERMISSIONS, the missing ones.
 */
export function verifyKeyResponseOf(outcome: VerifyOutcome): VerifyKeyResponse {
  const result = verifyResults.number(outcome.result);
  if (outcome.result === "malformed" || outcome.result === "not_found") return create(VerifyKeyResponseSchema, { result });
  const id = outcome.identity;
  return create(VerifyKeyResponseSchema, {
    result,
    keyId: id.keyId,
    // Unspecified for minted tokens, which say `token`, `policy` and `subject` instead.
    kind: keyKinds.number(keyKindOf(id.kind)),
    tenant: id.tenantSlug,
    org: id.orgSlug ?? "",
    owner: id.ownerName,
    expireTime: timestamp(id.expiresAt),
    permissions: "permissions" in outcome ? [...outcome.permissions] : [],
    missingPermissions: outcome.result === "insufficient_permissions" ? [...outcome.missing] : [],
    token: id.token !== null,
    policy: id.token?.policyName ?? "",
    subject: id.token?.subject ?? "",
  });
}
