// The connector form's logic, kept out of the components so it is tested on its own.
// Format checks only: Twilio's word comes with Connect.
import type { AuthField } from "./bindings/AuthField";
import type { Connection } from "./bindings/Connection";
import type { AuthMethod } from "./bindings/AuthMethod";
import type { Connector } from "./bindings/Connector";

export type Values = Record<string, string | boolean>;
/** Secret fields that use a credential asset instead of a typed value. */
export type AssetChoices = Record<string, string | null>;

/** Spaces, dashes, dots and brackets go, as the core does before its own check. */
export function normalizePhone(raw: string): string {
  return raw.replace(/[\s\-.()\u00a0]/g, "");
}

/** Every secret field starts with a typed value, not an asset. */
export function initialAssetChoices(method: AuthMethod): AssetChoices {
  return Object.fromEntries(method.fields.filter((f) => f.kind === "secret").map((f) => [f.name, null]));
}

export function initialValues(method: AuthMethod): Values {
  return Object.fromEntries(method.fields.map((field) => [field.name, initialValue(field)]));
}

/** The form of an existing connection: its values, secrets left empty (kept). */
export function valuesOf(method: AuthMethod, connection: Connection): Values {
  return Object.fromEntries(
    method.fields.map((field) => [field.name, field.kind === "secret" ? "" : (connection.fields[field.name] ?? initialValue(field))]),
  );
}

function initialValue(field: AuthField): string | boolean {
  if (field.kind === "toggle") return false;
  // A choice starts at its first option, as the core takes it when left out.
  return field.kind === "choice" ? (field.options[0]?.value ?? "") : "";
}

/** What Connect submits: the method's non-secret fields as typed (the core normalises them). */
export function submittedValues(method: AuthMethod, values: Values): Values {
  return Object.fromEntries(
    method.fields
      .filter((field) => field.kind !== "secret")
      .map((field) => [field.name, typeof values[field.name] === "string" ? String(values[field.name]).trim() : values[field.name]]),
  );
}

/** A value as the default name shows it: a phone in E.164, a URL by its host. */
function shownInName(field: AuthField, value: string): string {
  if (field.kind === "phone") return normalizePhone(value);
  if (field.kind === "url") {
    try {
      return new URL(value).hostname;
    } catch {
      return "";
    }
  }
  return value;
}

/** The name Patchbay gives a connection nobody named: the connector's and its first value. */
export function defaultName(connector: { name: string }, method: AuthMethod, values: Values): string {
  const first = method.fields
    .filter((field) => field.kind !== "secret" && field.kind !== "toggle" && field.kind !== "choice")
    .map((field) => shownInName(field, String(values[field.name]).trim()))
    .find((value) => value);
  return first ? `${connector.name} ${first}` : connector.name;
}

/** A connection's summary as its connector's columns show it: label and value, empty ones left out. */
export interface SummaryItem {
  label: string;
  value: string;
  /** A toggle that is on, shown as a badge with its label. */
  toggle: boolean;
}

export function summaryOf(connector: Connector | undefined, connection: Connection): SummaryItem[] {
  return (connector?.columns ?? []).flatMap((column): SummaryItem[] => {
    const value = connection.fields[column.key] ?? connection.details[column.key];
    if (typeof value === "boolean") return value ? [{ label: column.label, value: column.label, toggle: true }] : [];
    const shown = value ?? column.empty;
    return shown ? [{ label: column.label, value: shown, toggle: false }] : [];
  });
}

/**
 * The message to show under the field, or null when its format is right. `keepSecret`:
 * editing, where an empty secret field keeps the stored one.
 */
export function fieldError(field: AuthField, value: string | boolean, asset: string | null, keepSecret = false): string | null {
  if (field.kind === "toggle") return null;
  if (field.kind === "secret" && asset != null) return asset ? null : "Choose a credential asset";
  if (field.kind === "secret" && keepSecret && !value) return null;
  const text = field.kind === "phone" ? normalizePhone(String(value)) : String(value).trim();
  if (!text) return field.required ? `Enter the ${field.label}` : null;
  if (field.kind === "phone" && !text.startsWith("+")) return "Start with + and the country code, e.g. +15551230001";
  if (field.pattern && !new RegExp(field.pattern).test(text)) {
    return `The ${field.label} must be ${field.format_hint ?? "in the expected format"}`;
  }
  return null;
}

export function formErrors(method: AuthMethod, values: Values, assets: AssetChoices, keepSecrets = false): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const field of method.fields) {
    const error = fieldError(field, values[field.name], assets[field.name] ?? null, keepSecrets);
    if (error) errors[field.name] = error;
  }
  return errors;
}

/** Case- and accent-insensitive folding, one folded string per input character. */
function foldChar(c: string): string {
  return c.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
}

/** Splits `text` into runs that do and do not match `query`, for <mark>ing as text. */
export function highlight(text: string, query: string): { text: string; match: boolean }[] {
  const needle = [...query.trim()].map(foldChar).join("");
  if (!needle) return [{ text, match: false }];
  const chars = [...text];
  const folded = chars.map(foldChar);
  // starts[i] = offset of chars[i] in the folded string
  const starts: number[] = [];
  let offset = 0;
  for (const f of folded) {
    starts.push(offset);
    offset += f.length;
  }
  const haystack = folded.join("");
  const marked = new Array(chars.length).fill(false);
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + needle.length)) {
    chars.forEach((_, i) => {
      if (starts[i] < at + needle.length && starts[i] + folded[i].length > at) marked[i] = true;
    });
  }
  const runs: { text: string; match: boolean }[] = [];
  chars.forEach((c, i) => {
    const last = runs[runs.length - 1];
    if (last && last.match === marked[i]) last.text += c;
    else runs.push({ text: c, match: marked[i] });
  });
  return runs;
}
