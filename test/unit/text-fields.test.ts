// Free-text fields refuse characters that make a name display as something it is not.
import { describe, expect, test } from "@jest/globals";
import { textField } from "../../src/common/text-fields.ts";
import { KeywardError } from "../../src/errors.ts";

describe("textField", () => {
  // Bidi controls, bidi marks, and invisible format characters (zero-width, BOM, soft hyphen).
  const bidi = ["\u202A", "\u202B", "\u202C", "\u202D", "\u202E", "\u2066", "\u2067", "\u2068", "\u2069", "\u200E", "\u200F", "\u061C", "\u200B", "\u200C", "\u200D", "\uFEFF", "\u00AD", "\u2060"];

  test.each(bidi.map((c) => [`U+${c.codePointAt(0)?.toString(16).toUpperCase()}`, c]))("when a name holds %s, then INVALID_CHARACTERS", (_name, c) => {
    let thrown: unknown;
    try {
      textField(`invoice${c}fdp.exe`, "display_name", { max: 100, required: true });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(KeywardError);
    expect(thrown).toMatchObject({ reason: "INVALID_CHARACTERS", metadata: { field: "display_name" } });
  });

  test("when a name holds right-to-left letters (no controls), then it is accepted", () => {
    expect(textField("מפתח ראשי", "display_name", { max: 100, required: true })).toBe("מפתח ראשי");
    expect(textField("ci key — prod", "display_name", { max: 100, required: true })).toBe("ci key — prod");
  });
});
