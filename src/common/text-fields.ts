// Validation of free-text request fields: length limits and no control characters (a
// NUL byte would otherwise reach PostgreSQL and fail as an internal error).
import { invalidArgument } from "../errors.ts";

/**
 * Control characters, surrogates, private-use characters, line/paragraph separators, and
 * every format character (\p{Cf}): the bidirectional embedding, override and isolate
 * controls (U+202A–U+202E, U+2066–U+2069) and marks (U+200E, U+200F, U+061C), which make a
 * name display differently from what it is ("Trojan Source"), and the invisible ones
 * (zero-width space and joiners, U+FEFF, soft hyphen), which make two "unique" names look
 * the same.
 */
const controlChars = /[\p{Cc}\p{Cs}\p{Co}\p{Cf}\u2028\u2029]/u;

/** Trims and checks a required or optional free-text field. */
export function textField(value: string, field: string, opts: { max: number; required: boolean; multiline?: boolean }): string {
  const text = value.trim();
  if (text === "") {
    if (opts.required) throw invalidArgument("REQUIRED_FIELD", `${field} is required`, { field });
    return "";
  }
  if ([...text].length > opts.max) throw invalidArgument("FIELD_TOO_LONG", `${field} must be at most ${opts.max} characters`, { field, max: String(opts.max) });
  const checked = opts.multiline === true ? text.replace(/[\n\t]/g, " ") : text;
  if (controlChars.test(checked)) throw invalidArgument("INVALID_CHARACTERS", `${field} must not contain control characters`, { field });
  return text;
}

/** Checks a field against a pattern, with a message that says what is expected. */
export function patternField(value: string, field: string, pattern: RegExp, expected: string, required = true): string {
  if (value === "") {
    if (required) throw invalidArgument("REQUIRED_FIELD", `${field} is required`, { field });
    return "";
  }
  if (!pattern.test(value)) throw invalidArgument("INVALID_FORMAT", `${field}: expected ${expected}`, { field });
  return value;
}

/**
 * A value quoted for an error message, or only its length when it is long: a long value
 * may be a secret pasted into the wrong field, and errors never echo secrets.
 */
export function quotedForError(value: string): string {
  return value.length <= 40 ? JSON.stringify(value) : `(a value of ${value.length} characters)`;
}
