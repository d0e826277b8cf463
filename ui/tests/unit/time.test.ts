import { describe, expect, it } from "vitest";
import { exactTime, relativeTime } from "../../src/lib/time";

const now = Date.parse("2026-11-26T12:00:00Z");
const ago = (seconds: number) => new Date(now - seconds * 1000).toISOString();

describe("times in the table", () => {
  it("read as relative time, in the largest unit that fits", () => {
    expect(relativeTime(ago(10), now, "en")).toBe("just now");
    expect(relativeTime(ago(5 * 60), now, "en")).toBe("5 min. ago");
    expect(relativeTime(ago(3 * 3600), now, "en")).toBe("3 hr. ago");
    expect(relativeTime(ago(86400), now, "en")).toBe("yesterday");
    expect(relativeTime(ago(3 * 86400), now, "en")).toBe("3 days ago");
    expect(relativeTime(ago(400 * 86400), now, "en")).toBe("last yr.");
  });

  it("give the exact time, seconds included, for the tooltip", () => {
    expect(exactTime("2026-11-26T08:05:09Z", "en")).toMatch(/Nov 26, 2026.*:05:09/);
  });
});
