// connect-node refuses requests it cannot read before any keyward code runs, and some of
// those refusals are mislabelled: a body that is not protobuf binary is `Internal "parse
// binary: illegal tag…"`, a frame flagged compressed without a negotiated encoding is
// `Internal`. A malformed request is the client's error, so these become InvalidArgument
// with a google.rpc.ErrorInfo reason, like every other refusal keyward makes.
import type { DescEnum, DescField, DescMessage } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.ts";
import { quotedForError } from "../common/text-fields.ts";
import { ErrorKind, invalidArgument, KeywardError } from "../errors.ts";

/**
 * The KeywardError a client should get for a failure connect raised while reading its
 * request (`input` is the method's request type, to name fields), or undefined when the
 * failure is not about the request (it is then answered as it is). Recognises, for
 * connect-node 2.2: binary parse failures, compressed frames without an encoding and
 * failed decompression (Internal → InvalidArgument `MALFORMED_REQUEST`); JSON unknown
 * keys (`UNKNOWN_FIELD`), undefined enum names (`INVALID_ENUM_VALUE`), timestamps that are not RFC 3339 times in
 * 0001–9999 (`INVALID_TIMESTAMP`) and other JSON
 * decode failures (`MALFORMED_REQUEST`); and size limits (`REQUEST_TOO_LARGE`). Values the
 * client sent are never repeated beyond 20 characters (they may be secrets).
 */
export function requestErrorOf(e: ConnectError, input: DescMessage): KeywardError | undefined {
  const raw = e.rawMessage;
  switch (e.code) {
    case Code.Internal:
      if (raw.startsWith("parse binary:")) return malformed(`malformed request: not a valid ${input.typeName} in protobuf binary`);
      if (raw.startsWith("received compressed envelope")) return malformed("malformed request: a message is flagged compressed but the request names no encoding");
      if (raw === "decompression failed") return malformed("malformed request: a compressed message cannot be decompressed");
      return undefined;
    case Code.InvalidArgument:
      if (e.findDetails(ErrorInfoSchema).length > 0) return undefined;
      return jsonError(raw, input) ?? malformed(sanitized(raw));
    case Code.ResourceExhausted:
      if (e.findDetails(ErrorInfoSchema).length > 0) return undefined;
      return new KeywardError(ErrorKind.RESOURCE_EXHAUSTED, "REQUEST_TOO_LARGE", sanitized(raw));
    default:
      return undefined;
  }
}

/** A request that cannot be read. */
function malformed(message: string, metadata: Record<string, string> = {}): KeywardError {
  return invalidArgument("MALFORMED_REQUEST", message, metadata);
}

const unknownKey = /^cannot decode message ([\w.]+) from JSON: key "(.*)" is unknown$/s;
const badEnum = /^cannot decode enum ([\w.]+) from JSON: /;
const badField = /^cannot decode field ([\w.]+) from JSON: /;
const badTimestamp = /^cannot decode message google\.protobuf\.Timestamp from JSON: /;

/** Refusals of the protobuf-es JSON parser (strict: unknown keys are errors). */
function jsonError(raw: string, input: DescMessage): KeywardError | undefined {
  const unknown = unknownKey.exec(raw);
  if (unknown !== null) {
    const key = unknown[2] ?? "";
    const nameable = /^[A-Za-z0-9_@.[\]-]{1,64}$/.test(key);
    return invalidArgument("UNKNOWN_FIELD", `unknown field ${quotedForError(key)} in ${unknown[1]}`, nameable ? { field: key } : {});
  }
  const en = badEnum.exec(raw);
  if (en !== null) {
    const typeName = en[1] ?? "";
    const paths = fieldPaths(input, (f) => enumOf(f)?.typeName === typeName);
    const field = paths.length === 1 ? paths[0] : undefined;
    return invalidArgument(
      "INVALID_ENUM_VALUE",
      `${field ?? typeName}: not a defined ${typeName} value`,
      field === undefined ? { enum: typeName } : { field, enum: typeName },
    );
  }
  if (badTimestamp.test(raw)) {
    const paths = fieldPaths(input, (f) => messageOf(f)?.typeName === "google.protobuf.Timestamp");
    const field = paths.length === 1 ? paths[0] : undefined;
    const message = "a timestamp must be an RFC 3339 time between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z";
    return invalidArgument("INVALID_TIMESTAMP", field === undefined ? message : `${field}: ${message}`, field === undefined ? {} : { field });
  }
  const bad = badField.exec(raw);
  if (bad !== null) {
    const fullName = bad[1] ?? "";
    const paths = fieldPaths(input, (f) => `${f.parent.typeName}.${f.name}` === fullName);
    return malformed(sanitized(raw), paths.length === 1 && paths[0] !== undefined ? { field: paths[0] } : {});
  }
  return undefined;
}

/** The message type of a message field, a repeated message or a map of messages. */
function messageOf(f: DescField): DescMessage | undefined {
  if (f.fieldKind === "message") return f.message;
  if (f.fieldKind === "list" && f.listKind === "message") return f.message;
  if (f.fieldKind === "map" && f.mapKind === "message") return f.message;
  return undefined;
}

/** The enum of an enum field, a repeated enum or a map of enums. */
function enumOf(f: DescField): DescEnum | undefined {
  if (f.fieldKind === "enum") return f.enum;
  if (f.fieldKind === "list" && f.listKind === "enum") return f.enum;
  if (f.fieldKind === "map" && f.mapKind === "enum") return f.enum;
  return undefined;
}

/** Proto paths of the fields under `root` that match (nested messages followed once each, bounded depth). */
function fieldPaths(root: DescMessage, match: (f: DescField) => boolean): string[] {
  const found: string[] = [];
  const visit = (msg: DescMessage, prefix: string, seen: ReadonlySet<string>, depth: number): void => {
    if (depth > 8 || found.length > 1) return;
    for (const f of msg.fields) {
      const path = prefix === "" ? f.name : `${prefix}.${f.name}`;
      if (match(f)) found.push(path);
      const nested = f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message") || (f.fieldKind === "map" && f.mapKind === "message") ? f.message : undefined;
      if (nested !== undefined && !seen.has(nested.typeName)) visit(nested, path, new Set([...seen, nested.typeName]), depth + 1);
    }
  };
  visit(root, "", new Set([root.typeName]), 0);
  return found;
}

/**
 * A parser message without long quoted values or long unbroken tokens (either may be a
 * secret the client sent), at most 200 characters.
 */
function sanitized(raw: string): string {
  const text = raw.replace(/"[^"]{21,}"/g, '"…"').replace(/[A-Za-z0-9_+/=-]{33,}/g, "…");
  return text.length <= 200 ? text : `${text.slice(0, 199)}…`;
}
