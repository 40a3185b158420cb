// Which services the server exposes, and the files reflection describes.
import type { ConnectRouter } from "@connectrpc/connect";
import type { DescFile } from "@bufbuild/protobuf";
import { AuditService, file_keyward_v1_audit_service } from "../../gen/keyward/v1/audit_service_pb.ts";
import { DirectoryService, file_keyward_v1_directory_service } from "../../gen/keyward/v1/directory_service_pb.ts";
import { KeyService, file_keyward_v1_key_service } from "../../gen/keyward/v1/key_service_pb.ts";
import { PolicyService, file_keyward_v1_policy_service } from "../../gen/keyward/v1/policy_service_pb.ts";
import { TokenExchangeService, file_keyward_v1_token_exchange_service } from "../../gen/keyward/v1/token_exchange_service_pb.ts";
import { file_health_v1_health } from "../../gen/health/v1/health_pb.ts";
import type { ServiceImpl } from "@connectrpc/connect";
import { registerHealth, type HealthStatus } from "./health.ts";
import { registerReflection } from "./reflection.ts";

/** The files whose services are served, for reflection. */
const servedFiles: readonly DescFile[] = [
  file_keyward_v1_key_service,
  file_keyward_v1_policy_service,
  file_keyward_v1_token_exchange_service,
  file_keyward_v1_directory_service,
  file_keyward_v1_audit_service,
  file_health_v1_health,
];

/** Registers every service, the health service and reflection on `router`. */
export function createRoutes(deps: {
  health: HealthStatus;
  keys: ServiceImpl<typeof KeyService>;
  policies: ServiceImpl<typeof PolicyService>;
  directory: ServiceImpl<typeof DirectoryService>;
  audit: ServiceImpl<typeof AuditService>;
  tokens: ServiceImpl<typeof TokenExchangeService>;
}): (router: ConnectRouter) => void {
  return (router) => {
    router.service(KeyService, deps.keys);
    router.service(PolicyService, deps.policies);
    router.service(TokenExchangeService, deps.tokens);
    router.service(DirectoryService, deps.directory);
    router.service(AuditService, deps.audit);
    registerHealth(router, deps.health);
    registerReflection(router, servedFiles);
  };
}
