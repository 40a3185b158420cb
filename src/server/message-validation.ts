// Fail closed on what a request says: a decoded request message may carry fields this
// server does not know (binary keeps them in `$unknown`) or enum numbers its enum does not
// define (proto3 enums are open, so both JSON `{"kind":99}` and binary keep them). Either
// would silently drop or widen what the caller asked for (a dropped `required_permissions`
// turns a refusal into VALID; an unknown filter value lists everything), so both refuse.
// A google.protobuf.Timestamp outside the range the type defines (binary carries any
// seconds and nanos) is refused too, rather than turned into a nonsense date.
import type { DescEnum, DescMessage, Message } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** What is wrong with a request message: the first offending field, by its proto path. */
export type MessageViolation = {
  readonly reason: "UNKNOWN_FIELD" | "INVALID_ENUM_VALUE" | "INVALID_TIMESTAMP";
  /** Proto field path, e.g. `state`, `claims.repository`, `items[2].kind`; for an unknown field the last part is its number. */
  readonly field: string;
  /** A sentence for the client; names no value, only field names and numbers. */
  readonly message: string;
};

/**
 * Walks a decoded message (nested messages, repeated fields, maps, oneofs) and returns the
 * first unknown field, undefined enum value or out-of-range Timestamp, or undefined when
 * the message is clean.
 * Depth is bounded by the parser's recursion limit, which built the message.
 */
export function findMessageViolation(schema: DescMessage, message: Message): MessageViolation | undefined {
  return walk(reflect(schema, message), "");
}

function walk(msg: ReflectMessage, prefix: string): MessageViolation | undefined {
  const unknown = msg.getUnknown();
  if (unknown !== undefined && unknown.length > 0) {
    const no = unknown[0]?.no ?? 0;
    return {
      reason: "UNKNOWN_FIELD",
      field: join(prefix, String(no)),
      message: `unknown field number ${no} in ${msg.desc.typeName}${prefix === "" ? "" : ` (at ${prefix})`}`,
    };
  }
  for (const field of msg.fields) {
    if (!msg.isSet(field)) continue;
    const path = join(prefix, field.name);
    switch (field.fieldKind) {
      case "enum": {
        const bad = enumViolation(field.enum, msg.get(field), path);
        if (bad) return bad;
        break;
      }
      case "message": {
        const bad = walkMessage(msg.get(field), path);
        if (bad) return bad;
        break;
      }
      case "list": {
        const list = msg.get(field);
        let i = 0;
        for (const item of list) {
          const at = `${path}[${i}]`;
          const bad =
            field.listKind === "enum" ? enumViolation(field.enum, item, at) : field.listKind === "message" ? walkMessage(item as ReflectMessage, at) : undefined;
          if (bad) return bad;
          i += 1;
        }
        break;
      }
      case "map": {
        if (field.mapKind === "scalar") break;
        for (const [key, value] of msg.get(field)) {
          const at = `${path}[${mapKeyForPath(key)}]`;
          const bad = field.mapKind === "enum" ? enumViolation(field.enum, value, at) : walkMessage(value as ReflectMessage, at);
          if (bad) return bad;
        }
        break;
      }
      case "scalar":
        break;
    }
  }
  return undefined;
}

/** A nested message: a google.protobuf.Timestamp is range-checked, any other message walked. */
function walkMessage(msg: ReflectMessage, path: string): MessageViolation | undefined {
  return (msg.desc.typeName === "google.protobuf.Timestamp" ? timestampViolation(msg, path) : undefined) ?? walk(msg, path);
}

/** Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range google.protobuf.Timestamp allows. */
const minTimestampSeconds = -62_135_596_800n;
const maxTimestampSeconds = 253_402_300_799n;

/** A Timestamp whose seconds fall outside 0001-01-01..9999-12-31 or whose nanos are outside 0..999,999,999. */
function timestampViolation(msg: ReflectMessage, path: string): MessageViolation | undefined {
  const { seconds, nanos } = msg.message as Timestamp;
  if (seconds >= minTimestampSeconds && seconds <= maxTimestampSeconds && nanos >= 0 && nanos <= 999_999_999) return undefined;
  return {
    reason: "INVALID_TIMESTAMP",
    field: path,
    message: `${path}: a timestamp must lie between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, with nanos from 0 to 999999999`,
  };
}

function enumViolation(desc: DescEnum, value: unknown, path: string): MessageViolation | undefined {
  if (typeof value === "number" && desc.values.some((v) => v.number === value)) return undefined;
  return { reason: "INVALID_ENUM_VALUE", field: path, message: `${path}: ${String(value)} is not a defined ${desc.typeName} value` };
}

/** A map key as it appears in a path; a long one is left out (it may be a pasted secret). */
function mapKeyForPath(key: unknown): string {
  const text = String(key);
  return text.length <= 40 ? text : "…";
}

function join(prefix: string, name: string): string {
  return prefix === "" ? name : `${prefix}.${name}`;
}
