// KeyService handlers: read the caller, convert the request, call one service method,
// convert the result.
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { KeyService, VerifyKeyResponseSchema } from "../../gen/keyward/v1/key_service_pb.ts";
import type { KeyService as KeyDomainService } from "../keys/key-service.ts";
import { keyKindOf, type Verifier } from "../verify/verifier.ts";
import { callContextOf } from "./auth-interceptor.ts";
import { verdictKey } from "./context.ts";
import { keyKinds, keySlots, keyStates, keyToProto, timestamp, verifyResults } from "./convert.ts";

/** The KeyService implementation. */
export function createKeyHandlers(deps: { keys: KeyDomainService; verifier: Verifier }): ServiceImpl<typeof KeyService> {
  const { keys, verifier } = deps;
  return {
    async createKey(req, ctx) {
      const { key, secret } = await keys.create(callContextOf(ctx), {
        parent: req.parent,
        displayName: req.displayName,
        permissions: req.permissions,
        org: req.org,
        expireDays: req.expireDays,
        owner: req.owner,
      });
      return { key: keyToProto(key), secret };
    },
    async getKey(req, ctx) {
      return { key: keyToProto(await keys.get(callContextOf(ctx), req.name)) };
    },
    async listKeys(req, ctx) {
      const kind = keyKinds.name(req.kind);
      const state = keyStates.name(req.state);
      const page = await keys.list(callContextOf(ctx), {
        parent: req.parent,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
        ...(kind === undefined ? {} : { kind }),
        ...(state === undefined ? {} : { state }),
        owner: req.owner,
        creator: req.creator,
        org: req.org,
      });
      return { keys: page.keys.map(keyToProto), nextPageToken: page.nextPageToken };
    },
    async revokeKey(req, ctx) {
      return { key: keyToProto(await keys.revoke(callContextOf(ctx), { name: req.name, reason: req.reason })) };
    },
    async cloneKey(req, ctx) {
      const { key, secret } = await keys.clone(callContextOf(ctx), { name: req.name, displayName: req.displayName, expireDays: req.expireDays });
      return { key: keyToProto(key), secret };
    },
    async rotateKey(req, ctx) {
      const { key, secret, replaced } = await keys.rotate(callContextOf(ctx), {
        parent: req.parent,
        kind: keyKinds.name(req.kind),
        slot: keySlots.name(req.slot),
        org: req.org,
      });
      return { key: keyToProto(key), secret, replaced };
    },
    async verifyKey(req, ctx) {
      const outcome = await verifier.verify({ key: req.key, requiredPermissions: req.requiredPermissions, org: req.org, signal: ctx.signal });
      ctx.values.set(verdictKey, outcome.result);
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
    },
  };
}
