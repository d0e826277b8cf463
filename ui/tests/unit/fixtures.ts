// Connectors exactly as the core defines them, so the UI tests use real data.
import type { Connector } from "../../src/lib/bindings/Connector";
import httpDefinition from "../../../src-tauri/core/connectors/http.json";
import twilioDefinition from "../../../src-tauri/core/connectors/twilio.json";

export const twilio = twilioDefinition as Connector;
// Through unknown: JSON imports leave out what serde fills in (an empty `options`).
export const http = httpDefinition as unknown as Connector;
