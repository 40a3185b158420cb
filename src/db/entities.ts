// Every entity the ORM knows, listed in one place (no discovery by file globbing).
import { AuditEventSchema } from "../audit/audit-event-entity.ts";
import { OrganizationSchema, PrincipalSchema, TenantSchema } from "../directory/directory-entities.ts";
import { ApiKeySchema } from "../keys/api-key-entity.ts";
import { TrustPolicySchema } from "../policies/trust-policy-entity.ts";
import { ExchangedTokenSchema, MintedTokenSchema, SigningKeySchema } from "../tokens/token-entities.ts";

/** The entity schemas passed to MikroORM.init. */
export const entities = [
  TenantSchema,
  OrganizationSchema,
  PrincipalSchema,
  ApiKeySchema,
  TrustPolicySchema,
  SigningKeySchema,
  ExchangedTokenSchema,
  MintedTokenSchema,
  AuditEventSchema,
];
