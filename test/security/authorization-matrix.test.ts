// The shared security suite (Unkey style): written once, run for every management method
// of KeyService, PolicyService, DirectoryService and AuditService against every kind of credential —
// tenant admin, read-only, registry, fine-grained with and without the needed permission,
// org-scoped inside and outside its org, another tenant's admin, revoked, expired,
// missing, garbage and mistyped keys. Refused writes must change nothing; allowed writes
// must take effect; refusals are audited.
import { beforeAll, describe, expect, test } from "@jest/globals";
import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { AuditEventSchema, AuditOutcome } from "../../gen/keyward/v1/audit_pb.ts";
import { AuditService } from "../../gen/keyward/v1/audit_service_pb.ts";
import { PrincipalStatus, PrincipalType } from "../../gen/keyward/v1/directory_pb.ts";
import { DirectoryService } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyKind, KeySlot, KeyState } from "../../gen/keyward/v1/key_pb.ts";
import { KeyService, VerifyResult } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService } from "../../gen/keyward/v1/policy_service_pb.ts";
import { createTestTenant, withKey } from "../harness.ts";
import { attempt, keyIdOf, reasonOf, runTag, server, uniq, useServer } from "../rpc.ts";

type Clients = { keys: Client<typeof KeyService>; policies: Client<typeof PolicyService>; directory: Client<typeof DirectoryService>; audit: Client<typeof AuditService> };

/** Where the resource a request is about lives: tenant level, the org-scoped credential's org, or another org. */
type Place = "tenant" | "own" | "other";
/** How the caller sees the tenant: all of it, or only its own org. */
type Scope = "tenant" | "org";

/** A request ready to send, plus a read-back (with the admin key) of whether a write took effect. */
type Prepared = {
  call: (c: Clients, opts: CallOptions, scope: Scope) => Promise<void>;
  took?: () => Promise<boolean>;
};

type Denial = { code: Code; reason: string };
type Expectation = "allowed" | Denial;

type MethodSpec = {
  method: string;
  permission: "keys:read" | "keys:write" | "policies:read" | "policies:write" | "directory:read" | "directory:write" | "audit:read";
  /** Builds a valid request; `missing` targets a resource that does not exist (an unknown id, or an unknown tenant for parent-only methods). */
  prepare: (place: Place, missing?: boolean) => Promise<Prepared>;
  /** What the org-scoped credential gets inside its own org, and for another org's resources. */
  orgOwn: Expectation;
  orgOther: Expectation;
  /** Override for the fine-grained key holding exactly `permission`. */
  exact?: Expectation;
};

const dayMs = 24 * 60 * 60 * 1000;
const unauthenticatedMessage = "Missing or invalid API key";
const missingKeyId = "NoSuchKey0000000";

useServer();

let clients: Clients;
let grpcClients: Clients;
let fx: Fixture;
let other: { slug: string; adminKey: string };

type Fixture = {
  slug: string;
  parent: string;
  adminKey: string;
  adminPrincipal: string;
  orgOwn: string;
  orgOther: string;
  /** Organizations standing for each place (tenant: an org the org-scoped credential is not pinned to either). */
  orgs: Record<Place, string>;
  /** Fine-grained keys (`keys:read`) pinned to each place. */
  keys: Record<Place, string>;
  /** Principals confined to each place. */
  principals: Record<Place, string>;
  /** Trust policies (granting `policies:read`) at each place: resource names. */
  policies: Record<Place, string>;
  /** Raw credentials and their key ids. */
  creds: Record<CredentialName, string>;
  credIds: Record<CredentialName, string>;
  exact: Record<MethodSpec["permission"], string>;
  without: Record<MethodSpec["permission"], string>;
};

type CredentialName = "admin" | "readOnly" | "registry" | "orgScoped" | "revoked" | "expired" | "otherTenantAdmin";

function clientsOn(transport: Transport): Clients {
  return {
    keys: server.client(KeyService, transport),
    policies: server.client(PolicyService, transport),
    directory: server.client(DirectoryService, transport),
    audit: server.client(AuditService, transport),
  };
}

const asAdmin = (): CallOptions => withKey(fx.adminKey);
const keyName = (id: string): string => `${fx.parent}/keys/${id}`;
const principalName = (id: string): string => `${fx.parent}/principals/${id}`;
const orgName = (slug: string): string => `${fx.parent}/orgs/${slug}`;
const missingTenant = (): string => `tenants/no-such-tenant-${runTag}`;
const missingPolicy = (): string => `${fx.parent}/policies/00000000-0000-4000-8000-000000000000`;
/** Claims every suite policy requires (the suite's orgs are bound to GitHub owner `acme`), and a claim set they match. */
const policyClaims = { repository: "acme/deploy", repositoryId: "1" };
const matchingClaims = { repository: "acme/deploy", repository_owner: "acme", repository_id: "1" };
/** The org slug a new key/principal/rotation is pinned to for a place. */
const orgSlugAt = (place: Place): string => (place === "tenant" ? "" : place === "own" ? fx.orgOwn : fx.orgOther);

/** Code name and reason of a failure, or "OK", so a failed assertion shows both at once. */
function verdict(err: ConnectError | undefined): string {
  return err === undefined ? "OK" : `${Code[err.code]} ${reasonOf(err) ?? "(no reason)"}: ${err.rawMessage}`;
}

function expectDenial(err: ConnectError | undefined, denial: Denial): ConnectError {
  expect(err).toBeInstanceOf(ConnectError);
  const e = err as ConnectError;
  expect({ code: Code[e.code], reason: reasonOf(e) }).toEqual({ code: Code[denial.code], reason: denial.reason });
  return e;
}

async function adminKeys() {
  return (await clients.keys.listKeys({ parent: fx.parent, pageSize: 1000 }, asAdmin())).keys;
}

async function exists(p: Promise<unknown>): Promise<boolean> {
  const err = await attempt(p);
  if (err === undefined) return true;
  if (err.code === Code.NotFound) return false;
  throw err;
}

/** A fresh policy (granting `policies:read`) at a place, made by the admin: its name and etag. */
async function freshPolicy(place: Place): Promise<{ name: string; etag: string }> {
  const res = await clients.policies.createPolicy(
    { parent: fx.parent, policy: { displayName: uniq("target policy"), org: orgSlugAt(place), claims: policyClaims, permissions: ["policies:read"] } },
    asAdmin(),
  );
  return { name: res.policy?.name ?? "", etag: res.policy?.etag ?? "" };
}

async function adminPolicies() {
  return (await clients.policies.listPolicies({ parent: fx.parent, pageSize: 1000 }, asAdmin())).policies;
}

/** A fresh fine-grained key (`keys:read`) pinned to a place, made by the admin. */
async function freshKey(place: Place): Promise<string> {
  const res = await clients.keys.createKey({ parent: fx.parent, displayName: uniq("target"), permissions: ["keys:read"], org: orgSlugAt(place), expireDays: 30 }, asAdmin());
  return res.key?.keyId ?? "";
}

const denied = (code: Code, reason: string): Denial => ({ code, reason });
const tenantScopeRequired = denied(Code.PermissionDenied, "TENANT_SCOPE_REQUIRED");
const orgScope = denied(Code.PermissionDenied, "ORG_SCOPE");

/** The checks a listing must pass, depending on what the caller may see. */
function expectOnly<T>(items: readonly T[], idOf: (t: T) => string, scope: Scope, byPlace: Record<Place, string>): void {
  const ids = items.map(idOf);
  if (scope === "tenant") {
    expect(ids).toEqual(expect.arrayContaining([byPlace.tenant, byPlace.own, byPlace.other]));
  } else {
    expect(ids).toContain(byPlace.own);
    expect(ids).not.toContain(byPlace.other);
    expect(ids).not.toContain(byPlace.tenant);
  }
}

const specs: MethodSpec[] = [
  {
    method: "KeyService.CreateKey",
    permission: "keys:write",
    orgOwn: "allowed",
    orgOther: orgScope,
    async prepare(place, missing = false) {
      const displayName = uniq("created");
      const parent = missing ? missingTenant() : fx.parent;
      return {
        call: async (c, opts) => {
          await c.keys.createKey({ parent, displayName, permissions: ["keys:read"], org: orgSlugAt(place), expireDays: 30 }, opts);
        },
        took: async () => (await adminKeys()).some((k) => k.displayName === displayName),
      };
    },
  },
  {
    method: "KeyService.GetKey",
    permission: "keys:read",
    orgOwn: "allowed",
    orgOther: denied(Code.NotFound, "KEY_NOT_FOUND"),
    async prepare(place, missing = false) {
      const id = missing ? missingKeyId : fx.keys[place];
      return {
        call: async (c, opts) => {
          const res = await c.keys.getKey({ name: keyName(id) }, opts);
          expect(res.key?.keyId).toBe(id);
        },
      };
    },
  },
  {
    method: "KeyService.ListKeys",
    permission: "keys:read",
    orgOwn: "allowed",
    orgOther: "allowed",
    async prepare(place, missing = false) {
      const parent = missing ? missingTenant() : fx.parent;
      return {
        call: async (c, opts, scope) => {
          // For another org: ask for that org's keys explicitly; an org-scoped caller still sees none of them.
          const res = await c.keys.listKeys({ parent, pageSize: 1000, org: place === "other" ? fx.orgOther : "" }, opts);
          if (place === "other") {
            expect(res.keys.filter((k) => k.org !== fx.orgOwn).map((k) => k.keyId)).toEqual(scope === "org" ? [] : expect.arrayContaining([fx.keys.other]));
          } else {
            expectOnly(res.keys, (k) => k.keyId, scope, fx.keys);
          }
        },
      };
    },
  },
  {
    method: "KeyService.RevokeKey",
    permission: "keys:write",
    orgOwn: "allowed",
    orgOther: denied(Code.NotFound, "KEY_NOT_FOUND"),
    async prepare(place, missing = false) {
      const id = missing ? missingKeyId : await freshKey(place);
      return {
        call: async (c, opts) => {
          await c.keys.revokeKey({ name: keyName(id), reason: "security suite" }, opts);
        },
        took: async () => (await clients.keys.getKey({ name: keyName(id) }, asAdmin())).key?.state === KeyState.REVOKED,
      };
    },
  },
  {
    method: "KeyService.CloneKey",
    permission: "keys:write",
    orgOwn: "allowed",
    orgOther: denied(Code.NotFound, "KEY_NOT_FOUND"),
    async prepare(place, missing = false) {
      const id = missing ? missingKeyId : fx.keys[place];
      const displayName = uniq("clone");
      return {
        call: async (c, opts) => {
          const res = await c.keys.cloneKey({ name: keyName(id), displayName, expireDays: 0 }, opts);
          expect(res.key?.clonedFrom).toBe(keyName(id));
        },
        took: async () => (await adminKeys()).some((k) => k.displayName === displayName),
      };
    },
  },
  {
    method: "KeyService.RotateKey",
    permission: "keys:write",
    orgOwn: "allowed",
    orgOther: orgScope,
    // Rotating an admin slot mints `*:write`: a key holding only keys:write cannot grant that.
    exact: denied(Code.PermissionDenied, "PERMISSIONS_EXCEED_CALLER"),
    async prepare(place, missing = false) {
      const parent = missing ? missingTenant() : fx.parent;
      // The secondary admin slot: no credential of this suite lives there.
      const count = async () => (await clients.keys.listKeys({ parent: fx.parent, pageSize: 1000, kind: KeyKind.ADMIN }, asAdmin())).keys.length;
      const before = await count();
      return {
        call: async (c, opts) => {
          const res = await c.keys.rotateKey({ parent, kind: KeyKind.ADMIN, slot: KeySlot.SECONDARY, org: orgSlugAt(place) }, opts);
          expect(res.key?.org).toBe(place === "tenant" ? "" : fx.orgOwn);
        },
        took: async () => (await count()) > before,
      };
    },
  },
  {
    method: "PolicyService.CreatePolicy",
    permission: "policies:write",
    orgOwn: "allowed",
    orgOther: orgScope,
    async prepare(place, missing = false) {
      const displayName = uniq("created policy");
      const parent = missing ? missingTenant() : fx.parent;
      return {
        call: async (c, opts) => {
          await c.policies.createPolicy({ parent, policy: { displayName, org: orgSlugAt(place), claims: policyClaims, permissions: ["policies:read"] } }, opts);
        },
        took: async () => (await adminPolicies()).some((p) => p.displayName === displayName),
      };
    },
  },
  {
    method: "PolicyService.GetPolicy",
    permission: "policies:read",
    orgOwn: "allowed",
    orgOther: denied(Code.NotFound, "POLICY_NOT_FOUND"),
    async prepare(place, missing = false) {
      const name = missing ? missingPolicy() : fx.policies[place];
      return {
        call: async (c, opts) => {
          const res = await c.policies.getPolicy({ name }, opts);
          expect(res.policy?.name).toBe(name);
        },
      };
    },
  },
  {
    method: "PolicyService.ListPolicies",
    permission: "policies:read",
    orgOwn: "allowed",
    orgOther: "allowed",
    async prepare(place, missing = false) {
      const parent = missing ? missingTenant() : fx.parent;
      return {
        call: async (c, opts, scope) => {
          const res = await c.policies.listPolicies({ parent, pageSize: 1000, org: place === "other" ? fx.orgOther : "" }, opts);
          if (place === "other") {
            expect(res.policies.filter((p) => p.org !== fx.orgOwn).map((p) => p.name)).toEqual(scope === "org" ? [] : expect.arrayContaining([fx.policies.other]));
          } else {
            expectOnly(res.policies, (p) => p.name, scope, fx.policies);
          }
        },
      };
    },
  },
  {
    method: "PolicyService.UpdatePolicy",
    permission: "policies:write",
    orgOwn: "allowed",
    orgOther: denied(Code.NotFound, "POLICY_NOT_FOUND"),
    async prepare(place, missing = false) {
      // A fresh target per call: an update consumes its etag.
      const target = missing ? { name: missingPolicy(), etag: "1" } : await freshPolicy(place);
      const description = uniq("changed");
      return {
        call: async (c, opts) => {
          await c.policies.updatePolicy({ policy: { name: target.name, etag: target.etag, description }, updateMask: { paths: ["description"] } }, opts);
        },
        took: async () => (await clients.policies.getPolicy({ name: target.name }, asAdmin())).policy?.description === description,
      };
    },
  },
  {
    method: "PolicyService.DeletePolicy",
    permission: "policies:write",
    orgOwn: "allowed",
    orgOther: denied(Code.NotFound, "POLICY_NOT_FOUND"),
    async prepare(place, missing = false) {
      const target = missing ? { name: missingPolicy(), etag: "1" } : await freshPolicy(place);
      return {
        call: async (c, opts) => {
          await c.policies.deletePolicy({ name: target.name, etag: target.etag }, opts);
        },
        took: async () => !(await exists(clients.policies.getPolicy({ name: target.name }, asAdmin()))),
      };
    },
  },
  {
    method: "PolicyService.TestPolicy",
    permission: "policies:read",
    orgOwn: "allowed",
    orgOther: "allowed",
    async prepare(place, missing = false) {
      const parent = missing ? missingTenant() : fx.parent;
      return {
        call: async (c, opts, scope) => {
          const res = await c.policies.testPolicy({ parent, claims: matchingClaims, org: place === "other" ? fx.orgOther : "" }, opts);
          if (place === "other") {
            expect(res.results.map((r) => r.policy)).toEqual(scope === "org" ? [] : expect.arrayContaining([fx.policies.other]));
          } else {
            expectOnly(res.results, (r) => r.policy, scope, fx.policies);
          }
          for (const r of res.results) expect(r.matched).toBe(true);
        },
      };
    },
  },
  {
    method: "DirectoryService.GetTenant",
    permission: "directory:read",
    orgOwn: "allowed",
    orgOther: "allowed",
    async prepare(_place, missing = false) {
      const name = missing ? missingTenant() : fx.parent;
      return {
        call: async (c, opts) => {
          const res = await c.directory.getTenant({ name }, opts);
          expect(res.tenant?.slug).toBe(fx.slug);
        },
      };
    },
  },
  {
    method: "DirectoryService.UpdateTenant",
    permission: "directory:write",
    orgOwn: tenantScopeRequired,
    orgOther: tenantScopeRequired,
    async prepare(_place, missing = false) {
      const name = missing ? missingTenant() : fx.parent;
      const displayName = uniq("Tenant");
      return {
        call: async (c, opts) => {
          await c.directory.updateTenant({ tenant: { name, displayName }, updateMask: { paths: ["display_name"] } }, opts);
        },
        took: async () => (await clients.directory.getTenant({ name: fx.parent }, asAdmin())).tenant?.displayName === displayName,
      };
    },
  },
  {
    method: "DirectoryService.CreateOrganization",
    permission: "directory:write",
    orgOwn: tenantScopeRequired,
    orgOther: tenantScopeRequired,
    async prepare(_place, missing = false) {
      const parent = missing ? missingTenant() : fx.parent;
      const slug = uniq("neworg");
      return {
        call: async (c, opts) => {
          await c.directory.createOrganization({ parent, slug }, opts);
        },
        took: () => exists(clients.directory.getOrganization({ name: orgName(slug) }, asAdmin())),
      };
    },
  },
  {
    method: "DirectoryService.GetOrganization",
    permission: "directory:read",
    orgOwn: "allowed",
    orgOther: denied(Code.NotFound, "ORGANIZATION_NOT_FOUND"),
    async prepare(place, missing = false) {
      const slug = missing ? `no-such-org-${runTag}` : fx.orgs[place];
      return {
        call: async (c, opts) => {
          const res = await c.directory.getOrganization({ name: orgName(slug) }, opts);
          expect(res.organization?.slug).toBe(slug);
        },
      };
    },
  },
  {
    method: "DirectoryService.ListOrganizations",
    permission: "directory:read",
    orgOwn: "allowed",
    orgOther: "allowed",
    async prepare(_place, missing = false) {
      const parent = missing ? missingTenant() : fx.parent;
      return {
        call: async (c, opts, scope) => {
          const res = await c.directory.listOrganizations({ parent, pageSize: 1000 }, opts);
          expectOnly(res.organizations, (o) => o.slug, scope, fx.orgs);
        },
      };
    },
  },
  {
    method: "DirectoryService.UpdateOrganization",
    permission: "directory:write",
    orgOwn: tenantScopeRequired,
    orgOther: tenantScopeRequired,
    async prepare(place, missing = false) {
      const slug = missing ? `no-such-org-${runTag}` : fx.orgs[place];
      const displayName = uniq("Org");
      return {
        call: async (c, opts) => {
          await c.directory.updateOrganization({ organization: { name: orgName(slug), displayName }, updateMask: { paths: ["display_name"] } }, opts);
        },
        took: async () => (await clients.directory.getOrganization({ name: orgName(fx.orgs[place]) }, asAdmin())).organization?.displayName === displayName,
      };
    },
  },
  {
    method: "DirectoryService.CreatePrincipal",
    permission: "directory:write",
    orgOwn: "allowed",
    orgOther: orgScope,
    async prepare(place, missing = false) {
      const parent = missing ? missingTenant() : fx.parent;
      const principalId = uniq("new-principal");
      return {
        call: async (c, opts) => {
          await c.directory.createPrincipal({ parent, principalId, type: PrincipalType.SERVICE_ACCOUNT, permissions: ["directory:read"], org: orgSlugAt(place) }, opts);
        },
        took: () => exists(clients.directory.getPrincipal({ name: principalName(principalId) }, asAdmin())),
      };
    },
  },
  {
    method: "DirectoryService.GetPrincipal",
    permission: "directory:read",
    orgOwn: "allowed",
    orgOther: denied(Code.NotFound, "PRINCIPAL_NOT_FOUND"),
    async prepare(place, missing = false) {
      const id = missing ? `nobody-${runTag}` : fx.principals[place];
      return {
        call: async (c, opts) => {
          const res = await c.directory.getPrincipal({ name: principalName(id) }, opts);
          expect(res.principal?.principalId).toBe(id);
        },
      };
    },
  },
  {
    method: "DirectoryService.ListPrincipals",
    permission: "directory:read",
    orgOwn: "allowed",
    orgOther: "allowed",
    async prepare(_place, missing = false) {
      const parent = missing ? missingTenant() : fx.parent;
      return {
        call: async (c, opts, scope) => {
          const res = await c.directory.listPrincipals({ parent, pageSize: 1000 }, opts);
          expectOnly(res.principals, (p) => p.principalId, scope, fx.principals);
        },
      };
    },
  },
  {
    method: "DirectoryService.UpdatePrincipal",
    permission: "directory:write",
    orgOwn: "allowed",
    orgOther: denied(Code.NotFound, "PRINCIPAL_NOT_FOUND"),
    async prepare(place, missing = false) {
      // A fresh target per call: an update consumes its etag.
      let id = `nobody-${runTag}`;
      let etag = "";
      if (!missing) {
        const made = await clients.directory.createPrincipal(
          { parent: fx.parent, principalId: uniq("target"), type: PrincipalType.USER, permissions: ["directory:read"], org: orgSlugAt(place) },
          asAdmin(),
        );
        id = made.principal?.principalId ?? "";
        etag = made.principal?.etag ?? "";
      }
      const displayName = uniq("Renamed");
      return {
        call: async (c, opts) => {
          await c.directory.updatePrincipal({ principal: { name: principalName(id), etag, displayName }, updateMask: { paths: ["display_name"] } }, opts);
        },
        took: async () => (await clients.directory.getPrincipal({ name: principalName(id) }, asAdmin())).principal?.displayName === displayName,
      };
    },
  },
  {
    method: "AuditService.ListAuditEvents",
    permission: "audit:read",
    orgOwn: "allowed",
    orgOther: "allowed",
    async prepare(_place, missing = false) {
      const parent = missing ? missingTenant() : fx.parent;
      return {
        call: async (c, opts, scope) => {
          const res = await c.audit.listAuditEvents({ parent, pageSize: 1000, action: "key.create" }, opts);
          const byPlace = { tenant: keyName(fx.keys.tenant), own: keyName(fx.keys.own), other: keyName(fx.keys.other) };
          expectOnly(res.events, (e) => e.resource, scope, byPlace);
        },
      };
    },
  },
];

const writes = specs.filter((s) => s.permission.endsWith(":write"));

function label(e: Expectation, allowed = "it is allowed"): string {
  return e === "allowed" ? allowed : `${Code[e.code]} ${e.reason}`;
}
/** The table with its expectations spelled out, for test names. */
const rows = specs.map((spec) => ({
  spec,
  method: spec.method,
  permission: spec.permission,
  exactLabel: label(spec.exact ?? "allowed"),
  ownLabel: label(spec.orgOwn),
  otherLabel: label(spec.orgOther, "it is allowed but shows nothing of the other org"),
}));

/** Sends a prepared request as `key` and checks the outcome, and that a write took effect exactly when allowed. */
async function check(spec: MethodSpec, place: Place, key: string | undefined, expected: Expectation, opts: { scope?: Scope; via?: Clients } = {}): Promise<ConnectError | undefined> {
  const prepared = await spec.prepare(place);
  const err = await attempt(prepared.call(opts.via ?? clients, withKey(key), opts.scope ?? "tenant"));
  if (expected === "allowed") {
    expect(verdict(err)).toBe("OK");
  } else {
    expectDenial(err, expected);
  }
  if (prepared.took !== undefined) expect(await prepared.took()).toBe(expected === "allowed");
  return err;
}

beforeAll(async () => {
  clients = clientsOn(server.connectTransport);
  grpcClients = clientsOn(server.grpcTransport);
  const categories = server.config.permissionCategories;
  const t = await createTestTenant(server, "authz");
  const partial = { slug: t.slug, parent: `tenants/${t.slug}`, adminKey: t.adminKey } as Fixture;
  fx = partial;
  const { keys, directory } = clients;
  const admin = asAdmin();

  // The expired key is made first, then time moves past its expiry (every later key lives 30+ days).
  const expired = await keys.createKey({ parent: fx.parent, displayName: "soon-expired", permissions: ["*:write"], expireDays: 1 }, admin);
  server.clock.advance(dayMs + 60_000);

  const orgT = uniq("org-t");
  fx.orgOwn = uniq("org-own");
  fx.orgOther = uniq("org-other");
  fx.orgs = { tenant: orgT, own: fx.orgOwn, other: fx.orgOther };
  for (const slug of Object.values(fx.orgs)) await directory.createOrganization({ parent: fx.parent, slug, githubOwner: "acme" }, admin);

  fx.keys = { tenant: await freshKey("tenant"), own: await freshKey("own"), other: await freshKey("other") };
  fx.policies = { tenant: (await freshPolicy("tenant")).name, own: (await freshPolicy("own")).name, other: (await freshPolicy("other")).name };
  fx.principals = { tenant: "", own: "", other: "" };
  for (const place of ["tenant", "own", "other"] as const) {
    fx.principals[place] = uniq(`p-${place}`);
    await directory.createPrincipal({ parent: fx.parent, principalId: fx.principals[place], type: PrincipalType.USER, permissions: ["keys:read"], org: orgSlugAt(place) }, admin);
  }

  const readOnly = await keys.rotateKey({ parent: fx.parent, kind: KeyKind.READ_ONLY, slot: KeySlot.PRIMARY }, admin);
  const registry = await keys.rotateKey({ parent: fx.parent, kind: KeyKind.REGISTRY, slot: KeySlot.PRIMARY }, admin);
  const orgScoped = await keys.createKey({ parent: fx.parent, displayName: "org-scoped", permissions: ["*:write"], org: fx.orgOwn, expireDays: 365 }, admin);
  // The revoked key is used once first, so any cache has seen it valid.
  const revoked = await keys.createKey({ parent: fx.parent, displayName: "to-revoke", permissions: ["*:write"], expireDays: 365 }, admin);
  await keys.getKey({ name: keyName(revoked.key?.keyId ?? "") }, withKey(revoked.secret));
  await keys.revokeKey({ name: keyName(revoked.key?.keyId ?? ""), reason: "security suite" }, admin);
  other = await createTestTenant(server, "authz-other");

  fx.creds = {
    admin: t.adminKey,
    readOnly: readOnly.secret,
    registry: registry.secret,
    orgScoped: orgScoped.secret,
    revoked: revoked.secret,
    expired: expired.secret,
    otherTenantAdmin: other.adminKey,
  };
  fx.credIds = Object.fromEntries(Object.entries(fx.creds).map(([name, raw]) => [name, keyIdOf(raw)])) as Record<CredentialName, string>;
  fx.adminPrincipal = principalName("admin");

  const permissions = ["keys:read", "keys:write", "policies:read", "policies:write", "directory:read", "directory:write", "audit:read"] as const;
  fx.exact = {} as Fixture["exact"];
  fx.without = {} as Fixture["without"];
  for (const permission of permissions) {
    const [category, level] = permission.split(":");
    const others = categories.filter((c) => c !== category).map((c) => `${c}:write`);
    const lacking = level === "write" ? [`${category}:read`, ...others] : others;
    fx.exact[permission] = (await keys.createKey({ parent: fx.parent, displayName: `exact ${permission}`, permissions: [permission], expireDays: 365 }, admin)).secret;
    fx.without[permission] = (await keys.createKey({ parent: fx.parent, displayName: `without ${permission}`, permissions: lacking, expireDays: 365 }, admin)).secret;
  }
});

describe("authorization matrix over Connect (every management method)", () => {
  test.each(specs)("when the tenant admin key calls $method, then it is allowed", async (spec) => {
    await check(spec, "tenant", fx.creds.admin, "allowed");
  });

  test.each(specs)("when a read-only key calls $method, then reads are allowed and writes are refused with INSUFFICIENT_SCOPE", async (spec) => {
    const write = spec.permission.endsWith(":write");
    const err = await check(spec, "tenant", fx.creds.readOnly, write ? denied(Code.PermissionDenied, "INSUFFICIENT_SCOPE") : "allowed");
    if (write) expect(err?.rawMessage).toContain(`needs ${spec.permission}`);
  });

  test.each(specs)("when a registry key calls $method, then it is refused with INSUFFICIENT_SCOPE", async (spec) => {
    const err = await check(spec, "tenant", fx.creds.registry, denied(Code.PermissionDenied, "INSUFFICIENT_SCOPE"));
    expect(err?.rawMessage).toContain(`needs ${spec.permission}`);
  });

  test.each(rows)("when a fine-grained key holding exactly the permission $method needs ($permission) calls it, then $exactLabel", async ({ spec }) => {
    await check(spec, "tenant", fx.exact[spec.permission], spec.exact ?? "allowed");
  });

  test.each(specs)("when a fine-grained key without $permission calls $method, then PermissionDenied INSUFFICIENT_SCOPE names the permission", async (spec) => {
    const err = await check(spec, "tenant", fx.without[spec.permission], denied(Code.PermissionDenied, "INSUFFICIENT_SCOPE"));
    expect(err?.rawMessage).toContain(`needs ${spec.permission}`);
  });

  test.each(rows)("when an org-scoped key calls $method inside its own org, then $ownLabel", async ({ spec }) => {
    await check(spec, "own", fx.creds.orgScoped, spec.orgOwn, { scope: "org" });
  });

  test.each(rows)("when an org-scoped key calls $method on another org's resources, then $otherLabel", async ({ spec }) => {
    const err = await check(spec, "other", fx.creds.orgScoped, spec.orgOther, { scope: "org" });
    if (spec.orgOther !== "allowed" && spec.orgOther.code === Code.NotFound) {
      // Another org's resource and a resource that does not exist get the very same answer.
      const missing = await spec.prepare("other", true);
      const missingErr = expectDenial(await attempt(missing.call(clients, withKey(fx.creds.orgScoped), "org")), spec.orgOther);
      expect(missingErr.rawMessage).toBe(err?.rawMessage);
    }
  });

  test.each(specs)("when another tenant's admin key calls $method on this tenant, then TENANT_MISMATCH, the same for existing and missing resources", async (spec) => {
    const mismatch = denied(Code.PermissionDenied, "TENANT_MISMATCH");
    const existing = await check(spec, "tenant", fx.creds.otherTenantAdmin, mismatch);
    const missing = await spec.prepare("tenant", true);
    const missingErr = expectDenial(await attempt(missing.call(clients, withKey(fx.creds.otherTenantAdmin), "tenant")), mismatch);
    expect(missingErr.rawMessage).toBe(existing?.rawMessage);
  });

  const unauthenticated: { label: string; key: () => string | undefined }[] = [
    { label: "a revoked key", key: () => fx.creds.revoked },
    { label: "an expired key", key: () => fx.creds.expired },
    { label: "no key", key: () => undefined },
    { label: "a garbage bearer", key: () => "not-a-key-at-all" },
    {
      label: "a key with a wrong checksum",
      key: () => {
        const raw = fx.creds.admin;
        const last = raw.slice(-1);
        return raw.slice(0, -1) + (last === "A" ? "B" : "A");
      },
    },
  ];
  const unauthRows = specs.flatMap((spec) => unauthenticated.map((u) => ({ method: spec.method, spec, label: u.label, key: u.key })));

  test.each(unauthRows)("when $method is called with $label, then Unauthenticated \"Missing or invalid API key\"", async ({ spec, key }) => {
    const err = await check(spec, "tenant", key(), denied(Code.Unauthenticated, "UNAUTHENTICATED"));
    expect(err?.rawMessage).toBe(unauthenticatedMessage);
  });
});

describe("authorization sample over gRPC", () => {
  test.each(specs)("when $method is called over gRPC with no key, then Unauthenticated \"Missing or invalid API key\"", async (spec) => {
    const err = await check(spec, "tenant", undefined, denied(Code.Unauthenticated, "UNAUTHENTICATED"), { via: grpcClients });
    expect(err?.rawMessage).toBe(unauthenticatedMessage);
  });

  test.each(writes)("when a read-only key calls $method over gRPC, then PermissionDenied INSUFFICIENT_SCOPE", async (spec) => {
    const err = await check(spec, "tenant", fx.creds.readOnly, denied(Code.PermissionDenied, "INSUFFICIENT_SCOPE"), { via: grpcClients });
    expect(err?.rawMessage).toContain(`needs ${spec.permission}`);
  });
});

describe("refusals are audited", () => {
  const byMethod = (name: string): MethodSpec => specs.find((s) => s.method === name)!;
  const refusals: { label: string; cred: () => string; spec: MethodSpec; place: Place; reason: string; action: string; logOf: "this" | "caller" }[] = [
    { label: "a read-only key creating a key", cred: () => fx.creds.readOnly, spec: byMethod("KeyService.CreateKey"), place: "tenant", reason: "INSUFFICIENT_SCOPE", action: "key.create", logOf: "this" },
    { label: "a key without keys:read getting a key", cred: () => fx.without["keys:read"], spec: byMethod("KeyService.GetKey"), place: "tenant", reason: "INSUFFICIENT_SCOPE", action: "key.get", logOf: "this" },
    { label: "a registry key listing audit events", cred: () => fx.creds.registry, spec: byMethod("AuditService.ListAuditEvents"), place: "tenant", reason: "INSUFFICIENT_SCOPE", action: "audit.list", logOf: "this" },
    { label: "an org-scoped key updating the tenant", cred: () => fx.creds.orgScoped, spec: byMethod("DirectoryService.UpdateTenant"), place: "own", reason: "TENANT_SCOPE_REQUIRED", action: "tenant.update", logOf: "this" },
    { label: "an org-scoped key creating a key in another org", cred: () => fx.creds.orgScoped, spec: byMethod("KeyService.CreateKey"), place: "other", reason: "ORG_SCOPE", action: "key.create", logOf: "this" },
    { label: "another tenant's admin key getting a key", cred: () => fx.creds.otherTenantAdmin, spec: byMethod("KeyService.GetKey"), place: "tenant", reason: "TENANT_MISMATCH", action: "key.get", logOf: "caller" },
  ];

  test.each(refusals)("when $label is refused, then ListAuditEvents shows it DENIED with reason $reason", async (row) => {
    const requestId = uniq("authz-audit");
    const prepared = await row.spec.prepare(row.place);
    const err = await attempt(prepared.call(clients, { headers: { ...withKey(row.cred()).headers, "x-request-id": requestId } }, "tenant"));
    expectDenial(err, denied(Code.PermissionDenied, row.reason));

    const log = row.logOf === "this" ? { parent: fx.parent, key: fx.adminKey } : { parent: `tenants/${other.slug}`, key: other.adminKey };
    const res = await clients.audit.listAuditEvents({ parent: log.parent, pageSize: 1000, action: row.action, outcome: AuditOutcome.DENIED }, withKey(log.key));
    const events = res.events.filter((e) => e.requestId === requestId);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ outcome: AuditOutcome.DENIED, reason: row.reason, action: row.action, credential: keyIdOf(row.cred()) });
    expect(events[0]?.actor).toMatch(/^tenants\/[^/]+\/principals\/admin$/);
    expect(toJsonString(AuditEventSchema, events[0]!)).not.toContain(row.cred());
  });
});

describe("suspended owners", () => {
  test("when the principal that owns a key is suspended (tenant keeps such keys verifying), then that key can no longer call management methods", async () => {
    const t = await createTestTenant(server, "authz-suspended");
    const parent = `tenants/${t.slug}`;
    const as = withKey(t.adminKey);
    const { principal } = await clients.directory.createPrincipal(
      { parent, principalId: "ops", type: PrincipalType.USER, permissions: ["keys:write", "directory:read"] },
      as,
    );
    const owned = await clients.keys.createKey({ parent, displayName: "ops key", permissions: ["keys:write"], expireDays: 30, owner: principal!.name }, as);
    expect((await clients.keys.listKeys({ parent }, withKey(owned.secret))).keys.length).toBeGreaterThan(0);
    const suspended = await clients.directory.updatePrincipal(
      { principal: { name: principal!.name, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } },
      as,
    );
    expect(suspended.principal?.status).toBe(PrincipalStatus.SUSPENDED);

    // VerifyKey still says VALID (this tenant does not disable keys of suspended principals)…
    expect((await clients.keys.verifyKey({ key: owned.secret })).result).toBe(VerifyResult.VALID);
    // …but the suspended principal may not administer keyward.
    const displayName = uniq("by-suspended");
    const create = await attempt(clients.keys.createKey({ parent, displayName, permissions: ["keys:read"], expireDays: 30 }, withKey(owned.secret)));
    const list = await attempt(clients.keys.listKeys({ parent }, withKey(owned.secret)));
    for (const err of [create, list]) {
      expect(err?.code).toBe(Code.PermissionDenied);
      expect(err?.findDetails(ErrorInfoSchema)[0]?.reason).toBe("PRINCIPAL_SUSPENDED");
    }
    const { keys: all } = await clients.keys.listKeys({ parent }, as);
    expect(all.filter((k) => k.displayName === displayName)).toHaveLength(0);
    // Both refusals are in the tenant's audit log, attributed to the suspended principal's
    // key, folded into one event (same key, reason and minute) that counts them.
    await server.flushRefusals();
    const { events } = await clients.audit.listAuditEvents({ parent, action: "auth.refused" }, as);
    expect(events).toHaveLength(1);
    for (const e of events) expect(e).toMatchObject({ actor: principal!.name, credential: keyIdOf(owned.secret), outcome: AuditOutcome.DENIED, reason: "PRINCIPAL_SUSPENDED" });
    expect(events[0]?.details["count"]).toBe("2");
  });

  test("when an admin tries to suspend its own principal, then FailedPrecondition SELF_SUSPENSION and it stays active", async () => {
    const t = await createTestTenant(server, "authz-self");
    const name = `tenants/${t.slug}/principals/admin`;
    const err = await attempt(clients.directory.updatePrincipal({ principal: { name, status: PrincipalStatus.SUSPENDED }, updateMask: { paths: ["status"] } }, withKey(t.adminKey)));
    expect(err?.code).toBe(Code.FailedPrecondition);
    expect(err?.findDetails(ErrorInfoSchema)[0]?.reason).toBe("SELF_SUSPENSION");
    const { principal } = await clients.directory.getPrincipal({ name }, withKey(t.adminKey));
    expect(principal?.status).toBe(PrincipalStatus.ACTIVE);
  });
});

