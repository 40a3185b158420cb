// The SHA-256 that stands in for a secret wherever it must be recognizable but never kept
// (DESIGN.md §4: the audit log records a token's SHA-256, never the token).
import { createHash } from "node:crypto";

/** Lowercase hex SHA-256 (64 characters) of `text`'s UTF-8 bytes. */
export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
