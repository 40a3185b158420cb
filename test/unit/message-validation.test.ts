// The request-message walk without a server: unknown fields and undefined enum values are
// found at any depth (nested messages, repeated fields, maps, oneofs) and named by path.
import { describe, expect, test } from "@jest/globals";
import { create, createFileRegistry, fromBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Label as Label, FieldDescriptorProto_Type as Type, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { ListAuditEventsRequestSchema } from "../../gen/keyward/v1/audit_service_pb.ts";
import { findMessageViolation } from "../../src/server/message-validation.ts";

/** A proto3 schema with an enum in every position a request can hold one. */
const file = create(FileDescriptorProtoSchema, {
  name: "test/validation.proto",
  package: "test",
  syntax: "proto3",
  enumType: [{ name: "Color", value: [{ name: "COLOR_UNSPECIFIED", number: 0 }, { name: "COLOR_RED", number: 1 }, { name: "COLOR_BLUE", number: 5 }] }],
  messageType: [
    { name: "Inner", field: [{ name: "color", jsonName: "color", number: 1, label: Label.OPTIONAL, type: Type.ENUM, typeName: ".test.Color" }] },
    {
      name: "Outer",
      oneofDecl: [{ name: "choice" }],
      nestedType: [
        {
          name: "ByNameEntry",
          options: { mapEntry: true },
          field: [
            { name: "key", jsonName: "key", number: 1, label: Label.OPTIONAL, type: Type.STRING },
            { name: "value", jsonName: "value", number: 2, label: Label.OPTIONAL, type: Type.ENUM, typeName: ".test.Color" },
          ],
        },
        {
          name: "InnerByNameEntry",
          options: { mapEntry: true },
          field: [
            { name: "key", jsonName: "key", number: 1, label: Label.OPTIONAL, type: Type.STRING },
            { name: "value", jsonName: "value", number: 2, label: Label.OPTIONAL, type: Type.MESSAGE, typeName: ".test.Inner" },
          ],
        },
      ],
      field: [
        { name: "color", jsonName: "color", number: 1, label: Label.OPTIONAL, type: Type.ENUM, typeName: ".test.Color" },
        { name: "colors", jsonName: "colors", number: 2, label: Label.REPEATED, type: Type.ENUM, typeName: ".test.Color" },
        { name: "by_name", jsonName: "byName", number: 3, label: Label.REPEATED, type: Type.MESSAGE, typeName: ".test.Outer.ByNameEntry" },
        { name: "inner", jsonName: "inner", number: 4, label: Label.OPTIONAL, type: Type.MESSAGE, typeName: ".test.Inner" },
        { name: "inners", jsonName: "inners", number: 5, label: Label.REPEATED, type: Type.MESSAGE, typeName: ".test.Inner" },
        { name: "inner_by_name", jsonName: "innerByName", number: 6, label: Label.REPEATED, type: Type.MESSAGE, typeName: ".test.Outer.InnerByNameEntry" },
        { name: "picked", jsonName: "picked", number: 7, label: Label.OPTIONAL, type: Type.MESSAGE, typeName: ".test.Inner", oneofIndex: 0 },
        { name: "picked_color", jsonName: "pickedColor", number: 8, label: Label.OPTIONAL, type: Type.ENUM, typeName: ".test.Color", oneofIndex: 0 },
        { name: "label", jsonName: "label", number: 9, label: Label.OPTIONAL, type: Type.STRING },
      ],
    },
  ],
});
const registry = createFileRegistry(file, () => undefined);
const Outer = registry.getMessage("test.Outer") as DescMessage;
const Inner = registry.getMessage("test.Inner") as DescMessage;

type Loose = Message & Record<string, unknown>;
function outer(init: Record<string, unknown>): Loose {
  const m = create(Outer) as Loose;
  Object.assign(m, init);
  return m;
}
function inner(color: number, unknown?: boolean): Loose {
  const m = create(Inner) as Loose;
  m["color"] = color;
  if (unknown === true) m["$unknown"] = [{ no: 42, wireType: 0, data: new Uint8Array([1]) }];
  return m;
}

describe("findMessageViolation", () => {
  test("when every enum holds a defined value and nothing is unknown, then there is no violation", () => {
    const m = outer({
      color: 5,
      colors: [1, 5, 0],
      byName: { a: 1 },
      inner: inner(1),
      inners: [inner(0), inner(5)],
      innerByName: { x: inner(1) },
      choice: { case: "pickedColor", value: 1 },
      label: "hello",
    });
    expect(findMessageViolation(Outer, m)).toBeUndefined();
  });

  test.each([
    ["a top-level enum", { color: 2 }, "color"],
    ["a repeated enum", { colors: [1, 99] }, "colors[1]"],
    ["a map of enums", { byName: { k: 7 } }, "by_name[k]"],
    ["a nested message", { inner: inner(3) }, "inner.color"],
    ["a repeated message", { inners: [inner(1), inner(4)] }, "inners[1].color"],
    ["a map of messages", { innerByName: { z: inner(-1) } }, "inner_by_name[z].color"],
    ["a oneof enum", { choice: { case: "pickedColor", value: 12 } }, "picked_color"],
    ["a oneof message", { choice: { case: "picked", value: inner(6) } }, "picked.color"],
  ])("when %s holds an undefined value, then INVALID_ENUM_VALUE names its path", (_what, init, path) => {
    expect(findMessageViolation(Outer, outer(init))).toMatchObject({ reason: "INVALID_ENUM_VALUE", field: path });
  });

  test.each([
    ["the message itself", () => {
      const m = outer({});
      m["$unknown"] = [{ no: 15, wireType: 0, data: new Uint8Array([1]) }];
      return m;
    }, "15"],
    ["a nested message", () => outer({ inner: inner(1, true) }), "inner.42"],
    ["a repeated message", () => outer({ inners: [inner(1), inner(1, true)] }), "inners[1].42"],
    ["a map value", () => outer({ innerByName: { q: inner(1, true) } }), "inner_by_name[q].42"],
    ["a oneof message", () => outer({ choice: { case: "picked", value: inner(1, true) } }), "picked.42"],
  ])("when %s carries an unknown field, then UNKNOWN_FIELD names its path and number", (_what, build, path) => {
    expect(findMessageViolation(Outer, build())).toMatchObject({ reason: "UNKNOWN_FIELD", field: path });
  });

  test("when binary input has a field the schema lacks, then the parsed message is refused (what a newer client would send)", () => {
    // Field 9 (label, a string) is known; field 10 (varint 1) is not.
    const parsed = fromBinary(Outer, new Uint8Array([0x4a, 0x01, 0x61, 0x50, 0x01]));
    expect(findMessageViolation(Outer, parsed)).toMatchObject({ reason: "UNKNOWN_FIELD", field: "10" });
  });

  test("when a map key is long (it may be a pasted secret), then the path leaves it out", () => {
    const key = "k".repeat(60);
    const v = findMessageViolation(Outer, outer({ byName: { [key]: 9 } }));
    expect(v?.field).toBe("by_name[…]");
    expect(JSON.stringify(v)).not.toContain(key);
  });
});

describe("findMessageViolation: google.protobuf.Timestamp ranges", () => {
  const at = (startTime: { seconds: bigint; nanos: number }) => create(ListAuditEventsRequestSchema, { parent: "tenants/acme", startTime });

  test.each([
    ["nanos = 1e9", { seconds: 0n, nanos: 1_000_000_000 }],
    ["negative nanos", { seconds: 0n, nanos: -1 }],
    ["a second before 0001-01-01T00:00:00Z", { seconds: -62_135_596_801n, nanos: 0 }],
    ["a second after 9999-12-31T23:59:59Z", { seconds: 253_402_300_800n, nanos: 0 }],
  ])("when start_time has %s, then INVALID_TIMESTAMP names start_time", (_what, ts) => {
    expect(findMessageViolation(ListAuditEventsRequestSchema, at(ts))).toMatchObject({ reason: "INVALID_TIMESTAMP", field: "start_time" });
  });

  test.each([
    ["the first instant allowed", { seconds: -62_135_596_800n, nanos: 0 }],
    ["the last instant allowed", { seconds: 253_402_300_799n, nanos: 999_999_999 }],
    ["the epoch", { seconds: 0n, nanos: 0 }],
  ])("when start_time is %s, then it is accepted", (_what, ts) => {
    expect(findMessageViolation(ListAuditEventsRequestSchema, at(ts))).toBeUndefined();
  });
});
