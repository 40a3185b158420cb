// The expiration chooser of the new-key and clone dialogs: presets 7 / 30 / 90 days / 1 year
// or a custom number of days (1 to 365), with the "Expires at" time updating as you choose.
import { expiresAt, expiryPresets, formatTime, parseDays } from "./keys-model.ts";

/** What the chooser holds: a preset's days, or "custom" with the text typed. */
export type ExpiryChoice = { preset: number | "custom" | "source"; custom: string };

/** The chosen lifetime in days (0 for "same as the source key"), or the reason it is invalid. */
export function chosenDays(choice: ExpiryChoice): { days: number } | { error: string } {
  if (choice.preset === "source") return { days: 0 };
  if (choice.preset === "custom") return parseDays(choice.custom);
  return { days: choice.preset };
}

/**
 * Radio buttons for the presets and custom days; `allowSource` adds "Same lifetime as the
 * source key" (CloneKey's expire_days 0). `idPrefix` keeps the ids unique per dialog.
 */
export function ExpiryChooser(props: { value: ExpiryChoice; onChange: (v: ExpiryChoice) => void; idPrefix: string; allowSource?: boolean }) {
  const { value, onChange, idPrefix } = props;
  const days = chosenDays(value);
  const customId = `${idPrefix}-custom-days`;
  const errorId = `${idPrefix}-days-error`;
  const option = (preset: ExpiryChoice["preset"], label: string) => (
    <label key={String(preset)}>
      <input type="radio" name={`${idPrefix}-expiry`} checked={value.preset === preset} onChange={() => onChange({ ...value, preset })} /> {label}
    </label>
  );
  return (
    <fieldset class="expiry">
      <legend>Expiration</legend>
      {props.allowSource === true && option("source", "Same lifetime as the source key")}
      {expiryPresets.map((p) => option(p.days, p.label))}
      {option("custom", "Custom")}
      {value.preset === "custom" && (
        <span>
          <label for={customId}>Days (1 to 365)</label>{" "}
          <input id={customId} type="number" min={1} max={365} step={1} inputMode="numeric" value={value.custom}
            aria-invalid={"error" in days} aria-describedby={"error" in days ? errorId : undefined}
            onInput={(e) => onChange({ ...value, custom: (e.currentTarget as HTMLInputElement).value })} />
        </span>
      )}
      {"error" in days ? (
        <p id={errorId} class="field-error" role="alert">{days.error}</p>
      ) : days.days > 0 ? (
        <p data-testid={`${idPrefix}-expires-at`}>Expires at <time dateTime={expiresAt(days.days).toISOString()}>{formatTime(expiresAt(days.days))}</time></p>
      ) : (
        <p data-testid={`${idPrefix}-expires-at`}>Expires as long after now as the source key lived.</p>
      )}
    </fieldset>
  );
}
