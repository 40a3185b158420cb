// Public surface of @keyward/sdk.
export { bearerAuth, createKeywardClient, type KeywardClient, type KeywardClientOptions } from "./client.ts";
export * from "../../gen/keyward/v1/key_pb.ts";
export * from "../../gen/keyward/v1/key_service_pb.ts";
export * from "../../gen/keyward/v1/policy_pb.ts";
export * from "../../gen/keyward/v1/policy_service_pb.ts";
export * from "../../gen/keyward/v1/token_exchange_service_pb.ts";
export * from "../../gen/keyward/v1/directory_pb.ts";
export * from "../../gen/keyward/v1/directory_service_pb.ts";
export * from "../../gen/keyward/v1/audit_pb.ts";
export * from "../../gen/keyward/v1/audit_service_pb.ts";
