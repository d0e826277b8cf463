// The Twilio connector exactly as the core defines it, so the UI tests use real data.
import type { Connector } from "../../src/lib/bindings/Connector";
import definition from "../../../src-tauri/core/connectors/twilio.json";

export const twilio = definition as Connector;
