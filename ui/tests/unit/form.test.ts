import { describe, expect, it } from "vitest";
import { defaultName, fieldError, formErrors, highlight, initialValues, normalizePhone, submittedValues, summaryOf, valuesOf } from "../../src/lib/form";
import type { Connection } from "../../src/lib/bindings/Connection";
import { http, twilio } from "./fixtures";

const twilioAuthToken = twilio.auth_methods[0];
const field = (name: string) => twilioAuthToken.fields.find((f) => f.name === name)!;

describe("the Twilio form's format checks", () => {
  it("normalises phone numbers the way the core does", () => {
    expect(normalizePhone(" +1 (555) 123-0001 ")).toBe("+15551230001");
    expect(normalizePhone("+1.555.123.0001")).toBe("+15551230001");
  });

  it("asks for a leading + and a valid E.164 number", () => {
    expect(fieldError(field("phone_number"), "5551230001", null)).toMatch(/Start with \+/);
    expect(fieldError(field("phone_number"), "+1 555 123 0001", null)).toBeNull();
    expect(fieldError(field("phone_number"), "+1555abc", null)).toMatch(/must be/);
  });

  it("checks the Account SID and Auth Token formats from the connector definition", () => {
    expect(fieldError(field("account_sid"), `AC${"a".repeat(32)}`, null)).toBeNull();
    expect(fieldError(field("account_sid"), "AC123", null)).toBe(
      "The Account SID must be 34 characters: AC followed by 32 hexadecimal digits",
    );
    expect(fieldError(field("auth_token"), "zz", null)).toMatch(/32 hexadecimal digits/);
    expect(fieldError(field("auth_token"), "", null)).toBe("Enter the Auth Token");
  });

  it("accepts a chosen credential asset instead of a token, and asks for one when none is chosen", () => {
    expect(fieldError(field("auth_token"), "", "Twilio token")).toBeNull();
    expect(fieldError(field("auth_token"), "", "")).toBe("Choose a credential asset");
  });

  it("is valid only when every required field is", () => {
    const values = initialValues(twilioAuthToken);
    // The phone number is optional: without one the connection is account-level.
    expect(Object.keys(formErrors(twilioAuthToken, values, {}))).toEqual(["account_sid", "auth_token"]);
    Object.assign(values, { account_sid: `AC${"0".repeat(32)}`, auth_token: "f".repeat(32) });
    expect(formErrors(twilioAuthToken, values, {})).toEqual({});
    values.phone_number = "5551230001";
    expect(Object.keys(formErrors(twilioAuthToken, values, {}))).toEqual(["phone_number"]); // a number given is still checked
    values.phone_number = "+15551230001";
    expect(formErrors(twilioAuthToken, values, {})).toEqual({});
  });
});

describe("highlighting", () => {
  it("marks matches case- and accent-insensitively without changing the text", () => {
    expect(highlight("Télécom Twilio", "twi")).toEqual([
      { text: "Télécom ", match: false },
      { text: "Twi", match: true },
      { text: "lio", match: false },
    ]);
    expect(highlight("Télécom", "TELE")).toEqual([
      { text: "Télé", match: true },
      { text: "com", match: false },
    ]);
    expect(highlight("abc", "")).toEqual([{ text: "abc", match: false }]);
  });

  it("keeps markup as text", () => {
    const runs = highlight("<img src=x onerror=alert(1)>", "img");
    expect(runs.map((r) => r.text).join("")).toBe("<img src=x onerror=alert(1)>");
  });
});

describe("a connection in the form and in the table", () => {
  const sid = `AC${"0".repeat(32)}`;
  const connection: Connection = {
    id: "1",
    folder: "Shared",
    connector: "twilio",
    auth_method: "auth_token",
    name: "Alerts",
    fields: { account_sid: sid, test_credentials: true },
    details: { account_name: "Acme" },
    auth: { kind: "own" },
    rotatable: false,
    status: { state: "connected" },
    last_checked_at: null,
    created_at: "",
    updated_at: "",
    events_failing: null,
  };

  it("fills Edit from the stored values, secrets left empty, and submits only non-secret fields", () => {
    const values = valuesOf(twilioAuthToken, connection);
    expect(values).toEqual({ phone_number: "", test_credentials: true, account_sid: sid, auth_token: "" });
    values.auth_token = "f".repeat(32);
    values.account_sid = ` ${sid} `;
    expect(submittedValues(twilioAuthToken, values)).toEqual({ phone_number: "", test_credentials: true, account_sid: sid });
  });

  it("names a connection as the core would, after the first value given", () => {
    const values = initialValues(twilioAuthToken);
    expect(defaultName(twilio, twilioAuthToken, values)).toBe("Twilio");
    values.account_sid = sid;
    expect(defaultName(twilio, twilioAuthToken, values)).toBe(`Twilio ${sid}`);
    values.phone_number = "+1 555 123 0001";
    expect(defaultName(twilio, twilioAuthToken, values)).toBe("Twilio +15551230001");
    const bearer = http.auth_methods.find((m) => m.key === "bearer")!;
    expect(defaultName(http, bearer, { base_url: "https://api.example.com/v1", test_path: "/status", token: "t" })).toBe(
      "HTTP api.example.com",
    );
  });

  it("summarises by the connector's columns: details, fields, what an empty one means, toggles as badges", () => {
    expect(summaryOf(twilio, connection)).toEqual([
      { label: "Account", value: "Acme", toggle: false },
      { label: "Phone number", value: "every number of the account", toggle: false },
      { label: "Account SID", value: sid, toggle: false },
      { label: "Test Credentials", value: "Test Credentials", toggle: true },
    ]);
    expect(summaryOf(undefined, connection)).toEqual([]);
  });
});
