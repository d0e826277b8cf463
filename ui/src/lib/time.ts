// Times as a table shows them: relative ("5 min. ago"), with the exact time on hover.

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ["year", 365 * 86400],
  ["month", 30 * 86400],
  ["week", 7 * 86400],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
];

/** `iso` relative to `now` (ms since the epoch): "just now", "5 min. ago", "yesterday"… */
export function relativeTime(iso: string, now: number, locale?: string): string {
  const seconds = (Date.parse(iso) - now) / 1000;
  if (Math.abs(seconds) < 45) return "just now";
  const format = new Intl.RelativeTimeFormat(locale, { numeric: "auto", style: "short" });
  const [unit, size] = UNITS.find(([, size]) => Math.abs(seconds) >= size) ?? UNITS[UNITS.length - 1];
  return format.format(Math.round(seconds / size), unit);
}

/** The full date and time, for a tooltip. */
export function exactTime(iso: string, locale?: string): string {
  return new Date(iso).toLocaleString(locale, { dateStyle: "medium", timeStyle: "medium" });
}
