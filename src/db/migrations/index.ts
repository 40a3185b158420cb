// The migrations, listed statically: the MikroORM CLI cannot load .ts under plain Node,
// so `keyward migrate` and startup run the migrator with this list.
import { Migration20261123000001Initial } from "./Migration20261123000001Initial.ts";
import { Migration20261123000002AuditOrg } from "./Migration20261123000002AuditOrg.ts";
import { Migration20261130000003KeyCreator } from "./Migration20261130000003KeyCreator.ts";
import { Migration20261130000004AuditEventId } from "./Migration20261130000004AuditEventId.ts";
import { Migration20261130000005KeyBounds } from "./Migration20261130000005KeyBounds.ts";
import { Migration20261130000006Federation } from "./Migration20261130000006Federation.ts";
import { Migration20261130000007CredentialChanges } from "./Migration20261130000007CredentialChanges.ts";
import { Migration20261130000008CredentialChangeTenantIndex } from "./Migration20261130000008CredentialChangeTenantIndex.ts";

/** Every migration, oldest first. */
export const migrations = [
  { name: "Migration20261123000001Initial", class: Migration20261123000001Initial },
  { name: "Migration20261123000002AuditOrg", class: Migration20261123000002AuditOrg },
  { name: "Migration20261130000003KeyCreator", class: Migration20261130000003KeyCreator },
  { name: "Migration20261130000004AuditEventId", class: Migration20261130000004AuditEventId },
  { name: "Migration20261130000005KeyBounds", class: Migration20261130000005KeyBounds },
  { name: "Migration20261130000006Federation", class: Migration20261130000006Federation },
  { name: "Migration20261130000007CredentialChanges", class: Migration20261130000007CredentialChanges },
  { name: "Migration20261130000008CredentialChangeTenantIndex", class: Migration20261130000008CredentialChangeTenantIndex },
];
