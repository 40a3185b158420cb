// KEYWARD_PUBLIC_URL: keyward's base URL as CI workflows reach it, written into every
// policy's workflow snippet. Optional; http(s) only, no query, fragment or credentials;
// trailing slashes dropped; a bad value stops start-up naming the variable.
import { describe, expect, test } from "@jest/globals";
import { loadConfig } from "../../src/config.ts";
import { StartupError } from "../../src/startup-error.ts";

describe("KEYWARD_PUBLIC_URL", () => {
  test("when unset or blank, then publicUrl is undefined (snippets read vars.KEYWARD_URL)", () => {
    expect(loadConfig({}, "/srv").publicUrl).toBeUndefined();
    expect(loadConfig({ KEYWARD_PUBLIC_URL: "  " }, "/srv").publicUrl).toBeUndefined();
  });

  test.each([
    ["https://keyward.example.com", "https://keyward.example.com"],
    ["https://keyward.example.com/", "https://keyward.example.com"],
    ["https://keyward.example.com/prefix//", "https://keyward.example.com/prefix"],
    ["http://127.0.0.1:8080", "http://127.0.0.1:8080"],
  ])("when it is %s, then publicUrl is %s", (raw, expected) => {
    expect(loadConfig({ KEYWARD_PUBLIC_URL: raw }, "/srv").publicUrl).toBe(expected);
  });

  test.each(["keyward.example.com", "ftp://keyward.example.com", "https://keyward.example.com/?x=1", "https://keyward.example.com/#top", "javascript:alert(1)"])(
    "when it is %s, then start-up stops naming KEYWARD_PUBLIC_URL",
    (raw) => {
      expect(() => loadConfig({ KEYWARD_PUBLIC_URL: raw }, "/srv")).toThrow(StartupError);
      expect(() => loadConfig({ KEYWARD_PUBLIC_URL: raw }, "/srv")).toThrow(/KEYWARD_PUBLIC_URL/);
    },
  );

  test("when it carries credentials, then start-up stops without echoing them", () => {
    let message = "";
    try {
      loadConfig({ KEYWARD_PUBLIC_URL: "https://user:hunter2@keyward.example.com" }, "/srv");
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain("KEYWARD_PUBLIC_URL");
    expect(message).not.toContain("hunter2");
  });
});
