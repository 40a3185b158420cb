// TEMPORARY: a small OpenAPI 3.1 document for developing /docs before GET /openapi.json lands.
const op = (service: string, method: string, needsKey = true) => ({
  [`/keyward.v1.${service}/${method}`]: {
    post: {
      tags: [service],
      operationId: `${service}_${method}`,
      summary: method,
      ...(needsKey ? {} : { security: [] }),
      parameters: [{ name: "Connect-Protocol-Version", in: "header", required: true, schema: { type: "string", enum: ["1"], default: "1" } }],
      requestBody: { required: true, content: { "application/json": { schema: { type: "object" }, example: { parent: "tenants/acme" } } } },
      responses: { "200": { description: "OK", content: { "application/json": { schema: { type: "object" } } } }, default: { description: "Connect error", content: { "application/json": { schema: { type: "object" } } } } },
    },
  },
});
export const stubOpenApi = {
  openapi: "3.1.0",
  info: { title: "keyward (stub)", version: "v1" },
  servers: [{ url: "/" }],
  security: [{ bearer: [] }],
  tags: ["KeyService", "PolicyService", "TokenExchangeService", "DirectoryService", "AuditService"].map((name) => ({ name })),
  paths: {
    ...op("KeyService", "ListKeys"), ...op("KeyService", "CreateKey"), ...op("KeyService", "VerifyKey", false),
    ...op("PolicyService", "ListTrustPolicies"), ...op("TokenExchangeService", "GetJwks", false), ...op("DirectoryService", "GetTenant"), ...op("AuditService", "ListAuditEvents"),
  },
  components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
};
