// KeyService handlers: read the caller, convert the request, call one service method,
// convert the result.
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { KeyService } from "../../gen/keyward/v1/key_service_pb.ts";
import type { InvalidationWatch } from "../keys/invalidation-watch.ts";
import type { KeyService as KeyDomainService } from "../keys/key-service.ts";
import type { Verifier } from "../verify/verifier.ts";
import { callContextOf } from "./auth-interceptor.ts";
import { verdictKey } from "./context.ts";
import { invalidationScopes, keyKinds, keySlots, keyStates, keyToProto } from "./convert.ts";
import { verifyKeyResponseOf } from "./verify-response.ts";

/** The KeyService implementation. */
export function createKeyHandlers(deps: { keys: KeyDomainService; verifier: Verifier; watch: InvalidationWatch }): ServiceImpl<typeof KeyService> {
  const { keys, verifier, watch } = deps;
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
      return verifyKeyResponseOf(outcome);
    },
    async *watchInvalidations(req, ctx) {
      for await (const batch of watch.watch(callContextOf(ctx), { parent: req.parent, resumeToken: req.resumeToken })) {
        yield {
          invalidations: batch.invalidations.map((i) => ({
            scope: invalidationScopes.number(i.scope),
            keyIdHash: i.keyIdHash,
            changeTime: timestampFromDate(i.changeTime),
          })),
          resumeToken: batch.resumeToken,
          heartbeat: batch.heartbeat,
        };
      }
      // The watch returns when the call's signal aborts; at the caller's deadline that is
      // DEADLINE_EXCEEDED (as the proto says), not OK. A server stop still ends with OK.
      if (ctx.signal.aborted && ConnectError.from(ctx.signal.reason).code === Code.DeadlineExceeded) throw ConnectError.from(ctx.signal.reason);
    },
  };
}
