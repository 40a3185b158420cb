// Proto ⇄ domain conversions: enums, timestamps, resources. No business rules here.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AuditEventSchema, AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { OrganizationSchema, PrincipalSchema, PrincipalStatus, PrincipalType, TenantSchema } from "../../gen/keyward/v1/directory_pb.ts";
import { KeyKind, KeySchema, KeySlot, KeyState } from "../../gen/keyward/v1/key_pb.ts";
import { InvalidationScope, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { ClaimConstraintsSchema, TrustPolicySchema, type ClaimConstraints } from "../../gen/keyward/v1/policy_pb.ts";
import type { AuditOutcome as AuditOutcomeName, AuditRecord } from "../audit/audit-log.ts";
import type { PrincipalStatus as StatusName, PrincipalType as TypeName, TenantRecord } from "../directory/directory-repository.ts";
import type { OrgView, PrincipalView } from "../directory/directory-service.ts";
import { resourceName } from "../common/resource-names.ts";
import { tenantAudience } from "../common/tenant-audience.ts";
import type { KeyKindName } from "../keys/key-format.ts";
import type { KeyState as KeyStateName, SlotName } from "../keys/key-repository.ts";
import type { Invalidation } from "../keys/invalidation-watch.ts";
import type { KeyView } from "../keys/key-service.ts";
import type { VerifyResultName } from "../verify/verifier.ts";
import type { RequiredClaims } from "../policies/claim-matching.ts";
import type { ClaimInput } from "../policies/policy-claims.ts";
import type { PolicyView } from "../policies/policy-service.ts";

/** A two-way map between proto enum numbers and domain names; 0 (UNSPECIFIED) ↔ undefined. */
function enumMap<E extends number, N extends string>(pairs: readonly (readonly [E, N])[]) {
  const toName = new Map<number, N>(pairs);
  const toNumber = new Map<N, E>(pairs.map(([n, s]) => [s, n]));
  return {
    name: (value: number): N | undefined => toName.get(value),
    number: (name: N | null | undefined): E => (name == null ? undefined : toNumber.get(name)) ?? (0 as E),
  };
}

/** KeyKind ⇄ stored kind. */
export const keyKinds = enumMap<KeyKind, KeyKindName>([
  [KeyKind.ADMIN, "admin"],
  [KeyKind.READ_ONLY, "read_only"],
  [KeyKind.REGISTRY, "registry"],
  [KeyKind.FINE_GRAINED, "fine_grained"],
]);
/** KeySlot ⇄ stored slot. */
export const keySlots = enumMap<KeySlot, SlotName>([
  [KeySlot.PRIMARY, "primary"],
  [KeySlot.SECONDARY, "secondary"],
]);
/** KeyState ⇄ derived state. */
export const keyStates = enumMap<KeyState, KeyStateName>([
  [KeyState.ACTIVE, "active"],
  [KeyState.EXPIRED, "expired"],
  [KeyState.REVOKED, "revoked"],
]);
/** InvalidationScope ⇄ watch scope. */
export const invalidationScopes = enumMap<InvalidationScope, Invalidation["scope"]>([
  [InvalidationScope.KEY, "key"],
  [InvalidationScope.TENANT, "tenant"],
]);
/** VerifyResult ⇄ verdict. */
export const verifyResults = enumMap<VerifyResult, VerifyResultName>([
  [VerifyResult.VALID, "valid"],
  [VerifyResult.MALFORMED, "malformed"],
  [VerifyResult.NOT_FOUND, "not_found"],
  [VerifyResult.EXPIRED, "expired"],
  [VerifyResult.REVOKED, "revoked"],
  [VerifyResult.INSUFFICIENT_PERMISSIONS, "insufficient_permissions"],
  [VerifyResult.WRONG_SCOPE, "wrong_scope"],
  [VerifyResult.OWNER_SUSPENDED, "owner_suspended"],
]);
/** PrincipalType ⇄ stored type. */
export const principalTypes = enumMap<PrincipalType, TypeName>([
  [PrincipalType.USER, "user"],
  [PrincipalType.SERVICE_ACCOUNT, "service_account"],
]);
/** PrincipalStatus ⇄ stored status. */
export const principalStatuses = enumMap<PrincipalStatus, StatusName>([
  [PrincipalStatus.ACTIVE, "active"],
  [PrincipalStatus.SUSPENDED, "suspended"],
]);
/** AuditOutcome ⇄ stored outcome. */
export const auditOutcomes = enumMap<AuditOutcome, AuditOutcomeName>([
  [AuditOutcome.SUCCESS, "success"],
  [AuditOutcome.DENIED, "denied"],
]);

/** A Date as a Timestamp; null/undefined stays unset. */
export function timestamp(date: Date | null | undefined): Timestamp | undefined {
  return date == null ? undefined : timestampFromDate(date);
}

/** A Timestamp as a Date; unset stays undefined. */
export function dateOf(ts: Timestamp | undefined): Date | undefined {
  return ts === undefined ? undefined : timestampDate(ts);
}

/** keyward.v1.Key from a key view. Never carries the secret. */
export function keyToProto(k: KeyView) {
  const init: MessageInitShape<typeof KeySchema> = {
    name: resourceName(k.tenantSlug, "keys", k.keyId),
    keyId: k.keyId,
    tenant: k.tenantSlug,
    kind: keyKinds.number(k.kind),
    slot: keySlots.number(k.slot),
    displayName: k.displayName,
    org: k.orgSlug ?? "",
    permissions: [...k.permissions],
    owner: k.ownerName,
    creator: k.creatorName,
    state: keyStates.number(k.state),
    hint: k.hint,
    revokeReason: k.revokeReason ?? "",
    clonedFrom: k.clonedFrom === null ? "" : resourceName(k.tenantSlug, "keys", k.clonedFrom),
  };
  const times = { createTime: k.createdAt, expireTime: k.expiresAt, lastUsedTime: k.lastUsedAt, lastRotateTime: k.rotatedAt, revokeTime: k.revokedAt };
  for (const [field, date] of Object.entries(times)) if (date !== null) (init as Record<string, unknown>)[field] = timestampFromDate(date);
  return create(KeySchema, init);
}

/** keyward.v1.Tenant from a tenant record. */
export function tenantToProto(t: TenantRecord, audienceDomain: string) {
  return create(TenantSchema, {
    name: `tenants/${t.slug}`,
    slug: t.slug,
    displayName: t.displayName,
    audience: tenantAudience(t.slug, audienceDomain),
    disableKeysOfSuspendedPrincipals: t.disableKeysOfSuspendedPrincipals,
    createTime: timestampFromDate(t.createdAt),
    updateTime: timestampFromDate(t.updatedAt),
    etag: String(t.version),
  });
}

/** keyward.v1.Organization from an org view. */
export function orgToProto(o: OrgView) {
  return create(OrganizationSchema, {
    name: resourceName(o.tenantSlug, "orgs", o.slug),
    slug: o.slug,
    displayName: o.displayName,
    githubOwner: o.githubOwner ?? "",
    createTime: timestampFromDate(o.createdAt),
    updateTime: timestampFromDate(o.updatedAt),
    etag: String(o.version),
  });
}

/** keyward.v1.Principal from a principal view. */
export function principalToProto(p: PrincipalView) {
  return create(PrincipalSchema, {
    name: resourceName(p.tenantSlug, "principals", p.principalId),
    principalId: p.principalId,
    displayName: p.displayName,
    type: principalTypes.number(p.type),
    status: principalStatuses.number(p.status),
    permissions: [...p.permissions],
    org: p.orgSlug ?? "",
    createTime: timestampFromDate(p.createdAt),
    updateTime: timestampFromDate(p.updatedAt),
    etag: String(p.version),
  });
}

/** keyward.v1.AuditEvent from an audit record. */
export function auditEventToProto(tenantSlug: string, e: AuditRecord) {
  return create(AuditEventSchema, {
    name: resourceName(tenantSlug, "auditEvents", e.eventId),
    eventId: e.eventId,
    createTime: timestampFromDate(e.createdAt),
    actor: e.actor,
    credential: e.credential,
    action: e.action,
    resource: e.resource,
    outcome: auditOutcomes.number(e.outcome),
    reason: e.reason,
    requestId: e.requestId,
    details: { ...e.details },
  });
}

/** The claims of a request (GitHub claim names; "" for unset), from keyward.v1.ClaimConstraints (absent: all unset). */
export function claimsFromProto(c: ClaimConstraints | undefined): ClaimInput {
  return {
    repository_owner: c?.repositoryOwner ?? "",
    repository: c?.repository ?? "",
    job_workflow_ref: c?.jobWorkflowRef ?? "",
    ref: c?.ref ?? "",
    environment: c?.environment ?? "",
    repository_id: c?.repositoryId ?? "",
    repository_owner_id: c?.repositoryOwnerId ?? "",
    event_name: c?.eventName ?? "",
  };
}

/** keyward.v1.ClaimConstraints from a policy's claims (keyed by GitHub claim name). */
export function claimsToProto(c: RequiredClaims) {
  return create(ClaimConstraintsSchema, {
    repositoryOwner: c.repository_owner ?? "",
    repository: c.repository ?? "",
    jobWorkflowRef: c.job_workflow_ref ?? "",
    ref: c.ref ?? "",
    environment: c.environment ?? "",
    repositoryId: c.repository_id ?? "",
    repositoryOwnerId: c.repository_owner_id ?? "",
    eventName: c.event_name ?? "",
  });
}

/** keyward.v1.TrustPolicy from a policy view, with its audience and workflow snippet. */
export function policyToProto(p: PolicyView) {
  return create(TrustPolicySchema, {
    name: p.name,
    policyId: p.id,
    displayName: p.displayName,
    description: p.description,
    org: p.orgSlug ?? "",
    claims: claimsToProto(p.claims),
    maxSessionDurationSeconds: p.maxSessionSeconds,
    permissions: [...p.permissions],
    creator: p.creatorName,
    createTime: timestampFromDate(p.createdAt),
    updateTime: timestampFromDate(p.updatedAt),
    etag: String(p.version),
    audience: p.audience,
    workflowSnippet: p.workflowSnippet,
    warnings: [...p.warnings],
  });
}
