// The permission algebra without a server: validation, implication (write ⇒ read, `*:…`),
// intersection, what a set does not imply, and the shortest spelling of a set.
import { describe, expect, test } from "@jest/globals";
import { defaultPermissionCategories } from "../../src/config.ts";
import { formatPermissions, intersect, isPermission, notImplied, parsePermissions, toPermissionSet, validPermissions } from "../../src/directory/permissions.ts";
import { isKeywardError, type KeywardError } from "../../src/errors.ts";

const small = { categories: ["alpha", "beta", "gamma"] };
const full = { categories: [...defaultPermissionCategories] };
const set = (values: string[], catalogue = small) => toPermissionSet(catalogue, values);
const entries = (s: ReadonlyMap<string, number>) => Object.fromEntries([...s].sort(([a], [b]) => a.localeCompare(b)));

function refusalOf(run: () => unknown): KeywardError {
  try {
    run();
  } catch (e) {
    if (isKeywardError(e)) return e;
    throw e;
  }
  throw new Error("expected a refusal");
}

describe("parsePermissions", () => {
  test("when every permission is known, then they come back deduplicated and sorted", () => {
    expect(parsePermissions(small, ["beta:read", "alpha:write", "beta:read", "*:read"])).toEqual(["*:read", "alpha:write", "beta:read"]);
  });

  test.each([["nope:read"], ["alpha:admin"], ["alpha"], ["*:delete"], ["alpha:read:extra"], ["ALPHA:read"], [" alpha:read"], [":read"], ["*"], ["alpha:"], [""]])(
    "when %j is given, then INVALID_ARGUMENT UNKNOWN_PERMISSION listing every valid permission",
    (bad) => {
      const e = refusalOf(() => parsePermissions(small, ["alpha:read", bad]));
      expect([e.kind, e.reason]).toEqual(["INVALID_ARGUMENT", "UNKNOWN_PERMISSION"]);
      expect(e.metadata["field"]).toBe("permissions");
      for (const valid of ["*:read", "*:write", "alpha:read", "alpha:write", "beta:read", "beta:write", "gamma:read", "gamma:write"]) expect(e.message).toContain(valid);
    },
  );

  test("when the field is named, then the refusal names it", () => {
    expect(refusalOf(() => parsePermissions(small, ["x"], "policy.permissions")).metadata["field"]).toBe("policy.permissions");
  });

  test("when an unknown permission is long, then neither message nor metadata echo it", () => {
    const secret = `kwfg_${"S".repeat(60)}`;
    const e = refusalOf(() => parsePermissions(small, [secret]));
    expect(e.message).not.toContain(secret.slice(0, 41));
    expect(JSON.stringify(e.metadata)).not.toContain(secret.slice(0, 41));
  });

  test("when the default catalogue is used, then validPermissions lists both levels of every category plus *:read and *:write", () => {
    const valid = validPermissions(full);
    expect(valid).toHaveLength(2 + 2 * defaultPermissionCategories.length);
    for (const c of ["harden_runner", "secure_registry", "keys", "policies", "directory", "audit"]) {
      expect(valid).toContain(`${c}:read`);
      expect(valid).toContain(`${c}:write`);
    }
    for (const v of valid) expect(isPermission(full, v)).toBe(true);
  });
});

describe("implication", () => {
  test("when a set holds alpha:write, then it implies alpha:read and alpha:write but nothing of beta", () => {
    const held = set(["alpha:write"]);
    expect(notImplied(small, held, ["alpha:read", "alpha:write"])).toEqual([]);
    expect(notImplied(small, held, ["beta:read", "alpha:read"])).toEqual(["beta:read"]);
  });

  test("when a set holds alpha:read, then it does not imply alpha:write", () => {
    expect(notImplied(small, set(["alpha:read"]), ["alpha:write"])).toEqual(["alpha:write"]);
  });

  test("when a set holds *:read, then every category is readable and none writable", () => {
    const held = set(["*:read"]);
    expect(entries(held)).toEqual({ alpha: 1, beta: 1, gamma: 1 });
    expect(notImplied(small, held, ["alpha:read", "gamma:read", "*:read"])).toEqual([]);
    expect(notImplied(small, held, ["beta:write", "*:write"])).toEqual(["beta:write", "*:write"]);
  });

  test("when a set holds *:write, then it implies every permission, including *:read and *:write", () => {
    expect(notImplied(small, set(["*:write"]), validPermissions(small))).toEqual([]);
  });

  test("when *:write is wanted and all but one category is writable, then *:write is not implied", () => {
    expect(notImplied(small, set(["alpha:write", "beta:write", "gamma:read"]), ["*:write"])).toEqual(["*:write"]);
    expect(notImplied(small, set(["alpha:write", "beta:write", "gamma:write"]), ["*:write"])).toEqual([]);
  });

  test("when an unknown permission is wanted, then it is never implied, even by *:write", () => {
    expect(notImplied(small, set(["*:write"]), ["nope:read", "alpha:delete", ""])).toEqual(["nope:read", "alpha:delete", ""]);
  });

  test("when nothing is held, then every wanted permission is reported, in order", () => {
    expect(notImplied(small, set([]), ["beta:read", "alpha:write"])).toEqual(["beta:read", "alpha:write"]);
  });

  test("when the same category is given at two levels, then the higher wins", () => {
    expect(entries(set(["alpha:read", "alpha:write", "alpha:read"]))).toEqual({ alpha: 2 });
    expect(entries(set(["*:read", "beta:write"]))).toEqual({ alpha: 1, beta: 2, gamma: 1 });
  });
});

describe("intersect", () => {
  test("when a key's grant meets its owner's authority, then each category gets the lower level", () => {
    const granted = set(["alpha:write", "beta:read", "gamma:write"]);
    const owner = set(["*:read", "gamma:write"]);
    expect(entries(intersect(granted, owner))).toEqual({ alpha: 1, beta: 1, gamma: 2 });
  });

  test("when either side is empty or the sets are disjoint, then the result is empty", () => {
    expect(intersect(set(["alpha:write"]), set([])).size).toBe(0);
    expect(intersect(set([]), set(["*:write"])).size).toBe(0);
    expect(intersect(set(["alpha:write"]), set(["beta:write"])).size).toBe(0);
  });

  test("when intersected either way round, then the result is the same", () => {
    const a = set(["alpha:write", "beta:read"]);
    const b = set(["*:read", "alpha:write"]);
    expect(entries(intersect(a, b))).toEqual(entries(intersect(b, a)));
  });
});

describe("formatPermissions", () => {
  test.each([
    ["every category writable", ["alpha:write", "beta:write", "gamma:write"], ["*:write"]],
    ["*:write", ["*:write"], ["*:write"]],
    ["every category readable", ["alpha:read", "beta:read", "gamma:read"], ["*:read"]],
    ["*:read plus one write", ["*:read", "beta:write"], ["*:read", "beta:write"]],
    ["all readable, two writable", ["alpha:write", "beta:write", "gamma:read"], ["*:read", "alpha:write", "beta:write"]],
    ["one write and one read", ["alpha:read", "gamma:write"], ["alpha:read", "gamma:write"]],
    ["nothing", [], []],
  ])("when the set is %s, then it is spelled %j", (_what, values, spelled) => {
    expect(formatPermissions(small, set(values))).toEqual(spelled);
  });

  test("when a set is spelled and parsed back, then it is the same set", () => {
    for (const values of [["alpha:write"], ["*:read", "gamma:write"], ["*:write"], ["beta:read", "gamma:read"]]) {
      const s = set(values);
      expect(entries(set(formatPermissions(small, s)))).toEqual(entries(s));
    }
  });

  test("when the default catalogue's every category is writable, then it is spelled *:write", () => {
    expect(formatPermissions(full, set(defaultPermissionCategories.map((c) => `${c}:write`), full))).toEqual(["*:write"]);
  });
});
