// The built UI in Debian's Chromium (playwright-core), over the mocked IPC of
// harness.ts: every flow a person goes through, by keyboard where it matters.
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import axe from "axe-core";
import { tableLayout } from "./table-layout.mjs";

const root = fileURLToPath(new URL("../../dist-test/", import.meta.url));
// The page is served with the window's own Content-Security-Policy, so anything the
// real window would refuse (inline script or style, a foreign connection) fails here too.
const tauriConf = JSON.parse(await readFile(new URL("../../../src-tauri/tauri.conf.json", import.meta.url), "utf8"));
const csp = tauriConf.app.security.csp;
const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json" };
const SID = `AC${"0123456789abcdef".repeat(2)}`;
const TOKEN = "f".repeat(32);

let server, browser, page, base;

before(async () => {
  server = createServer(async (request, response) => {
    const path = normalize(decodeURIComponent(new URL(request.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    try {
      const body = await readFile(join(root, path));
      response.writeHead(200, {
        "content-type": types[extname(path)] ?? "application/octet-stream",
        "content-security-policy": csp,
      });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  server?.close();
});

beforeEach(async () => {
  page = await browser.newPage({ viewport: { width: 1200, height: 780 } });
  page.on("pageerror", (err) => assert.fail(`page error: ${err.message}`));
  page.on("dialog", (dialog) => assert.fail(`unexpected alert: ${dialog.message()}`));
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation", (event) =>
      window.cspViolations.push(`${event.violatedDirective}: ${event.blockedURI || "inline"}`),
    );
  });
  await page.goto(`${base}/tests/browser/harness.html`);
  await page.getByRole("treeitem", { name: "Shared" }).waitFor();
});

afterEach(async () => {
  const { csp, contract } = await page.evaluate(() => ({
    csp: window.cspViolations,
    contract: window.patchbayMock.state.contractViolations,
  }));
  await page.close();
  assert.deepEqual(csp, [], "nothing the window's CSP refuses");
  assert.deepEqual(contract, [], "every IPC call matches a Rust command and its arguments");
});

async function openTwilioForm() {
  await page.getByRole("button", { name: "Add connection" }).first().click();
  await page.getByRole("combobox", { name: "Search connectors" }).fill("twi");
  await page.keyboard.press("Enter");
  await page.getByLabel("Phone number").waitFor();
}

/** Adds a Twilio connection through the form and waits for the dialog to close. */
async function addTwilioConnection(fields) {
  await openTwilioForm();
  await fillTwilio(fields);
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await page.getByRole("dialog").waitFor({ state: "hidden" });
}

/**
 * Runs axe-core (a real accessibility engine) on the page as it is now, in the light
 * and the dark theme, and fails on any violation.
 */
async function assertAccessible(screen) {
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axe.source);
  for (const colorScheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme });
    const { violations, passes } = await page.evaluate(async () => {
      const results = await window.axe.run(document, { resultTypes: ["violations"] });
      return {
        passes: results.passes.length,
        violations: results.violations.map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
      };
    });
    assert.deepEqual(violations, [], `${screen}, ${colorScheme} theme`);
    assert.ok(passes >= 10, `${screen}, ${colorScheme} theme: axe checked only ${passes} rules`);
  }
  await page.emulateMedia({ colorScheme: "light" });
}

async function fillTwilio({ phone = "+1 555 123 0001", sid = SID, token = TOKEN } = {}) {
  await page.getByLabel("Phone number").fill(phone);
  await page.getByLabel("Account SID").fill(sid);
  await page.locator("#field-auth_token").fill(token);
}

describe("Add connection", () => {
  it("works from the keyboard alone: search, choose, fill, Connect", async () => {
    await page.locator("body").focus();
    // Tab to the Connections tab's Add connection button.
    for (let i = 0; i < 20; i++) {
      await page.keyboard.press("Tab");
      if (await page.evaluate(() => document.activeElement?.textContent?.trim() === "Add connection")) break;
    }
    await page.keyboard.press("Enter");
    const search = page.getByRole("combobox", { name: "Search connectors" });
    assert.equal(await search.evaluate((el) => el === document.activeElement), true, "the search box is focused");
    await page.keyboard.type("twi");
    const option = page.getByRole("option").first();
    assert.equal(await option.getAttribute("aria-selected"), "true");
    assert.equal(await option.locator("mark").first().textContent(), "Twi");
    await page.keyboard.press("ArrowDown"); // Twilio SendGrid, found too
    assert.equal(await page.getByRole("option").nth(1).getAttribute("aria-selected"), "true");
    await page.keyboard.press("ArrowUp"); // back to Twilio
    await page.keyboard.press("Enter");

    await page.keyboard.press("Tab"); // past the auth methods (Auth Token is picked)
    await page.keyboard.press("Tab"); // connection name
    assert.equal(await page.evaluate(() => document.activeElement?.id), "field-name");
    await page.keyboard.press("Tab");
    await page.keyboard.type("+1 (555) 123-0001");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab"); // past the Use Test Credentials switch
    await page.keyboard.type(SID);
    await page.keyboard.press("Tab");
    await page.keyboard.type(TOKEN);
    await page.keyboard.press("Enter");

    await page.getByRole("dialog").waitFor({ state: "hidden" });
    const row = page.getByRole("row", { name: /Twilio \+15551230001/ });
    await row.waitFor();
    assert.match(await row.textContent(), /Connected/);
    assert.match(await row.textContent(), /Acme Operations/, "the connector's summary columns");
  });

  it("finds a connector by a keyword and shows which keyword matched", async () => {
    await page.getByRole("button", { name: "Add connection" }).first().click();
    await page.getByRole("combobox", { name: "Search connectors" }).fill("whatsapp");
    const option = page.getByRole("option", { name: /Twilio/ });
    await option.locator(".keywords").waitFor();
    assert.equal(await option.locator(".keywords mark").textContent(), "WhatsApp");
    assert.match(await option.textContent(), /Also found by: WhatsApp/);
    await page.getByRole("button", { name: "Close" }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });
  });

  it("builds Slack's form from its definition: the bot token alone, sent as the secret", async () => {
    await page.getByRole("button", { name: "Add connection" }).first().click();
    await page.getByRole("combobox", { name: "Search connectors" }).fill("slack");
    await page.keyboard.press("Enter");
    const token = page.getByLabel("Bot User OAuth Token", { exact: true });
    await token.waitFor();
    assert.equal(await page.getByLabel("Account SID").count(), 0, "no Twilio field");
    assert.equal(await page.getByRole("group", { name: "Authentication" }).count(), 0, "one auth method: no picker");
    assert.equal(await token.getAttribute("type"), "password");
    assert.equal(await page.getByLabel("Connection name").getAttribute("placeholder"), "Slack");
    const connect = page.getByRole("button", { name: "Connect", exact: true });
    await token.fill("xoxp-a-user-token");
    assert.equal(await connect.isDisabled(), true, "a user token has the wrong format");
    await token.fill("xoxb-1-2-abc");
    await assertAccessible("the Slack form");
    await connect.click();
    const row = page.getByRole("row", { name: /Slack Acme Robots/ });
    await row.waitFor();
    assert.match(await row.textContent(), /Acme Robots[^]*chat:write/);
    const sent = await page.evaluate(() => window.patchbayMock.state.calls.find((c) => c.command === "add_connection").args.form);
    assert.deepEqual(
      [sent.connector, sent.authMethod, sent.values, sent.secret, sent.secretAsset],
      ["slack", "bot_token", {}, "xoxb-1-2-abc", null],
    );
  });

  it("offers Twilio's auth methods as a picker, and each shows its own fields", async () => {
    await openTwilioForm();
    const methods = page.getByRole("group", { name: "Authentication" });
    assert.equal(await methods.getByRole("radio", { name: /Auth Token/ }).isChecked(), true, "the recommended method first");
    await methods.getByRole("radio", { name: /API Key/ }).check();
    await page.getByLabel("API Key SID").waitFor();
    assert.equal(await page.getByLabel("Use Test Credentials").count(), 0, "no Test Credentials toggle for keys");
    assert.equal(await page.locator("#field-auth_token").count(), 0);
    await page.getByLabel("Account SID").fill(SID);
    await page.getByLabel("API Key SID").fill(`SK${"1".repeat(32)}`);
    await page.getByLabel("API Key Secret", { exact: true }).fill("any length is fine");
    await assertAccessible("the Twilio form with API Key");
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    const sent = await page.evaluate(() => window.patchbayMock.state.calls.find((c) => c.command === "add_connection").args.form);
    assert.deepEqual(
      [sent.authMethod, Object.keys(sent.values).sort(), sent.secret],
      ["api_key", ["account_sid", "api_key_sid", "phone_number"], "any length is fine"],
    );

    // Edit keeps the method: the other one is shown, but cannot be picked.
    await page.getByRole("button", { name: `More actions for Twilio ${SID}` }).click();
    await page.getByRole("menuitem", { name: "Edit" }).click();
    const editing = page.getByRole("group", { name: "Authentication" });
    assert.equal(await editing.getByRole("radio", { name: /API Key/ }).isChecked(), true);
    assert.equal(await editing.getByRole("radio", { name: /Auth Token/ }).isDisabled(), true);
    assert.equal(await page.getByLabel("API Key SID").inputValue(), `SK${"1".repeat(32)}`);
  });

  it("builds SendGrid's form: a region picker at Global, an email field, the key", async () => {
    await page.getByRole("button", { name: "Add connection" }).first().click();
    await page.getByRole("combobox", { name: "Search connectors" }).fill("email");
    const option = page.getByRole("option", { name: /Twilio SendGrid/ });
    assert.match(await option.textContent(), /Email/, "found by its category");
    await page.keyboard.press("Enter");
    const region = page.getByLabel("Region");
    await region.waitFor();
    assert.equal(await region.inputValue(), "global");
    assert.equal(await page.getByLabel("Sender email").getAttribute("type"), "email");
    await page.getByLabel("Sender email").fill("alerts@acme.example");
    await page.locator("#field-api_key").fill(`SG.${"a".repeat(22)}.${"b".repeat(43)}`);
    await region.selectOption("eu");
    await assertAccessible("the SendGrid form");
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.getByRole("row", { name: /Twilio SendGrid alerts@acme.example/ }).waitFor();
    const sent = await page.evaluate(() => window.patchbayMock.state.calls.find((c) => c.command === "add_connection").args.form);
    assert.deepEqual(sent.values, { region: "eu", sender_email: "alerts@acme.example" });
  });

  it("closes the catalog with Esc", async () => {
    await page.getByRole("button", { name: "Add connection" }).first().click();
    await page.getByRole("combobox", { name: "Search connectors" }).waitFor();
    await page.keyboard.press("Escape");
    await page.getByRole("dialog").waitFor({ state: "hidden" });
  });

  it("hides the Auth Token by default and Show/Hide toggles it", async () => {
    await openTwilioForm();
    const token = page.locator("#field-auth_token");
    assert.equal(await token.getAttribute("type"), "password");
    const show = page.getByRole("button", { name: "Show" });
    assert.equal(await show.getAttribute("aria-pressed"), "false");
    await show.click();
    assert.equal(await token.getAttribute("type"), "text");
    assert.equal(await page.getByRole("button", { name: "Hide" }).getAttribute("aria-pressed"), "true");
    await page.getByRole("button", { name: "Hide" }).click();
    assert.equal(await token.getAttribute("type"), "password");
  });

  it("keeps Connect disabled until the form is valid and says what connecting permits", async () => {
    await openTwilioForm();
    const connect = page.getByRole("button", { name: "Connect", exact: true });
    assert.equal(await connect.isDisabled(), true);
    await fillTwilio({ sid: "AC123" });
    await page.getByLabel("Account SID").blur();
    assert.match(await page.locator("#field-account_sid-error").textContent(), /34 characters/);
    assert.equal(await connect.isDisabled(), true);
    await page.getByLabel("Account SID").fill(SID);
    assert.equal(await connect.isDisabled(), false);
    assert.match(await page.locator(".permissions").textContent(), /read, write, modify and delete Twilio data/);
  });

  it("uses a credential asset: the picker lists the folder's assets and New asset…", async () => {
    await openTwilioForm();
    await fillTwilio({ token: "" });
    await page.getByRole("button", { name: "More options for Auth Token" }).click();
    await page.getByRole("menuitem", { name: "Use credential asset" }).click();
    const picker = page.locator("#field-auth_token");
    await picker.selectOption({ label: "New asset…" });
    await page.getByLabel("Asset name").fill("Twilio token");
    await page.getByLabel("Value", { exact: true }).fill(TOKEN);
    await page.getByRole("button", { name: "Create asset" }).click();
    assert.equal(await picker.inputValue(), "Twilio token");
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    await page.getByRole("row", { name: /Twilio \+15551230001/ }).waitFor();
    const sent = await page.evaluate(() => window.patchbayMock.state.calls.find((c) => c.command === "add_connection").args.form);
    assert.deepEqual([sent.secret, sent.secretAsset], [null, "Twilio token"], "a reference, never the value");
    assert.deepEqual(Object.keys(sent.values).sort(), ["account_sid", "phone_number", "test_credentials"], "the fields rendered, no secret");
  });

  it("puts Twilio's word next to the field it concerns and keeps what was typed", async () => {
    await openTwilioForm();
    await fillTwilio({ phone: "+15551230009" });
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    const error = page.locator("#field-phone_number-error");
    await error.waitFor();
    assert.match(await error.textContent(), /not registered in the Twilio account/);
    assert.equal(await page.getByLabel("Phone number").evaluate((el) => el === document.activeElement), true);
    assert.equal(await page.getByLabel("Account SID").inputValue(), SID);
    assert.equal(await page.locator("#field-auth_token").inputValue(), TOKEN);
    assert.equal((await page.locator("dialog[open]").textContent()).includes(TOKEN), false, "the token is never echoed");
  });

  it("shows account-level errors at the top", async () => {
    await openTwilioForm();
    await fillTwilio({ token: "0".repeat(32) });
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor();
    assert.match(await alert.textContent(), /did not accept this Account SID and Auth Token/);
    assert.match(await alert.textContent(), /Twilio said: “Authenticate”/, "Twilio's own words are shown");
  });

  it("shows progress while connecting and can be cancelled, saving nothing", async () => {
    await page.evaluate(() => (window.patchbayMock.state.connectDelayMs = 5000));
    await openTwilioForm();
    await fillTwilio();
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    const progress = page.getByRole("status").filter({ hasText: "Connecting to Twilio" });
    await progress.waitFor();
    assert.equal(await page.getByRole("button", { name: "Connect", exact: true }).isDisabled(), true);
    await page.getByRole("button", { name: "Cancel" }).click();
    await progress.waitFor({ state: "hidden" });
    assert.equal(await page.getByRole("button", { name: "Connect", exact: true }).isDisabled(), false);
    assert.equal(await page.evaluate(() => window.patchbayMock.connections.length), 0);
  });
});

describe("A locked keyring", () => {
  it("asks to unlock it, retries, and saves once it is unlocked", async () => {
    await page.evaluate(() => (window.patchbayMock.state.vaultLocked = true));
    await openTwilioForm();
    await fillTwilio();
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    const notice = page.getByRole("status").filter({ hasText: "The OS vault is locked" });
    await notice.waitFor();
    assert.match(await notice.textContent(), /Unlock your keyring/);
    assert.equal(await page.evaluate(() => window.patchbayMock.connections.length), 0);
    await page.evaluate(() => (window.patchbayMock.state.vaultLocked = false));
    await page.getByRole("dialog").waitFor({ state: "hidden", timeout: 15000 });
    await notice.waitFor({ state: "hidden" });
    assert.equal(await page.evaluate(() => window.patchbayMock.connections.length), 1);
  });
});

describe("Connections tab", () => {
  it("shows when polling for a connection's events fails", async () => {
    await page.evaluate(() => {
      window.patchbayMock.state.eventsFailing = {
        code: "twilio_server_error",
        message: "Twilio is failing (HTTP 503) and still was after 3 attempts; try again later",
        at: "2026-11-26T08:00:00.000Z",
      };
    });
    await addTwilioConnection();
    await page.getByText(/Events failing: Twilio is failing \(HTTP 503\)/).waitFor();
  });

  it("renders a hostile name as text", async () => {
    const hostile = "<img src=x onerror=alert(1)>";
    await openTwilioForm();
    await page.getByLabel("Connection name").fill(hostile);
    await fillTwilio();
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    const cell = page.getByRole("cell", { name: hostile, exact: true });
    await cell.waitFor();
    assert.equal(await page.locator(".table img").count(), 0);
  });

  it("invites Add connection when the folder is empty, and filters as you type", async () => {
    assert.match(await page.locator(".empty-state").textContent(), /No connections in Shared yet/);
    for (const phone of ["+15551230001", "+15551230002"]) {
      await addTwilioConnection({ phone });
    }
    await page.getByRole("row", { name: /0002/ }).waitFor();
    await page.getByLabel("Filter connections").fill("0002");
    await page.getByRole("row", { name: /0001/ }).waitFor({ state: "hidden" });
    assert.equal(await page.getByRole("row").count(), 2, "the header and one match");
  });
});

describe("Edit", () => {
  it("fills the form from the connection, keeps the token unless replaced, and saves", async () => {
    await addTwilioConnection();
    await page.getByRole("button", { name: "More actions for Twilio +15551230001" }).click();
    await page.getByRole("menuitem", { name: "Edit" }).click();
    assert.equal(await page.getByLabel("Phone number").inputValue(), "+15551230001");
    assert.equal(await page.getByLabel("Account SID").inputValue(), SID);
    const token = page.locator("#field-auth_token");
    assert.equal(await token.inputValue(), "", "the token is never sent back to the window");
    assert.equal(await token.getAttribute("placeholder"), "Unchanged: type to replace");
    await page.getByLabel("Connection name").fill("Alerts");
    await page.getByRole("button", { name: "Save and connect" }).click();
    await page.getByRole("cell", { name: "Alerts", exact: true }).waitFor();
    const sent = await page.evaluate(() => window.patchbayMock.state.calls.find((c) => c.command === "update_connection").args.form);
    assert.deepEqual([sent.name, sent.authMethod, sent.secret, sent.secretAsset], ["Alerts", "auth_token", null, null]);
  });
});

describe("Rotate Auth Token", () => {
  it("names every dependent connection before rotating, shows progress, then each result and the history", async () => {
    await page.getByRole("tab", { name: "Credential assets" }).click();
    await page.getByLabel("Asset name").fill("Twilio token");
    await page.getByLabel("Value", { exact: true }).fill(TOKEN);
    await page.getByRole("button", { name: "Create asset" }).click();
    await page.getByRole("cell", { name: "Twilio token", exact: true }).waitFor();
    assert.equal(
      await page.getByRole("button", { name: "Rotate Auth Token of asset Twilio token" }).count(),
      0,
      "nothing rotatable uses the asset yet",
    );
    await page.getByRole("tab", { name: "Connections" }).click();
    for (const phone of ["+15551230001", "+15551230002"]) {
      await openTwilioForm();
      await fillTwilio({ phone, token: "" });
      await page.getByRole("button", { name: "More options for Auth Token" }).click();
      await page.getByRole("menuitem", { name: "Use credential asset" }).click();
      await page.locator("#field-auth_token").selectOption({ label: "Twilio token (Shared)" });
      await page.getByRole("button", { name: "Connect", exact: true }).click();
      await page.getByRole("dialog").waitFor({ state: "hidden" });
    }
    await page.getByRole("tab", { name: "Credential assets" }).click();
    await page.getByRole("button", { name: "Rotate Auth Token of asset Twilio token" }).click();
    const dialog = page.getByRole("dialog", { name: "Rotate Auth Token" });
    await dialog.getByText("Shared/Twilio +15551230001").waitFor();
    await dialog.getByText("Shared/Twilio +15551230002").waitFor();
    assert.match(await dialog.textContent(), /401\/403/);
    await page.evaluate(() => (window.patchbayMock.state.holdRotations = true));
    await dialog.getByRole("button", { name: "Rotate Auth Token" }).click();
    await dialog.getByText(/Rotating: secondary token/).waitFor();
    await page.waitForFunction(() => typeof window.patchbayMock.state.releaseRotation === "function");
    await page.evaluate(() => window.patchbayMock.state.releaseRotation());
    await dialog.getByText("rotated; 2 of 2 dependent connections connected with the new token").waitFor();
    await dialog.getByRole("button", { name: "Done" }).click();

    await page.getByRole("button", { name: "Rotation history" }).click();
    const history = page.getByRole("dialog", { name: "Rotation history" });
    await history.getByText(/credential asset 'Shared\/Twilio token'/).waitFor();
    await page.keyboard.press("Escape");

    // Cancel while rotating: before promotion, nothing changes and the dialog says so.
    await page.getByRole("button", { name: "Rotate Auth Token of asset Twilio token" }).click();
    await dialog.getByRole("button", { name: "Rotate Auth Token" }).click();
    await dialog.getByText(/Rotating: secondary token/).waitFor();
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.getByText(/cancelled before promotion/).waitFor();
  });
});

describe("Credential stores", () => {
  it("registers a store by keyboard, links an asset to its secret, and sends the folder's new assets there", async () => {
    await page.getByRole("button", { name: "Credential stores" }).click();
    const dialog = page.getByRole("dialog", { name: "Credential stores" });
    await dialog.waitFor();
    await page.getByLabel("Name", { exact: true }).fill("Company <b>vault</b>");
    await page.getByLabel("Address").fill("http://vault.example.com:8200");
    await page.getByLabel("Sign-in token").fill("hvs.secret-token");
    await page.getByRole("button", { name: "Add store" }).click();
    await dialog.getByRole("alert").filter({ hasText: "plain http only on this machine" }).waitFor();
    await page.getByLabel("Address").fill("https://vault.example.com:8200");
    await page.getByLabel("Sign-in token").press("Enter");
    await dialog.getByRole("status").filter({ hasText: "Registered credential store" }).waitFor();
    const row = dialog.getByRole("row", { name: /vault\.example\.com/ });
    assert.equal(await row.getByRole("cell").first().textContent(), "Company <b>vault</b>", "a name is shown as text");
    assert.equal(await page.getByLabel("Sign-in token").inputValue(), "", "the token is not kept in the form");
    await dialog.getByRole("button", { name: "Test credential store Company <b>vault</b>" }).click();
    await dialog.getByRole("status").filter({ hasText: "works (version 2.7.2" }).waitFor();
    await assertAccessible("the Credential stores dialog");
    await page.keyboard.press("Escape");

    await page.getByRole("tab", { name: "Credential assets" }).click();
    await page.getByLabel("Asset name").fill("Twilio prod");
    await page.getByLabel("Link to a secret in a credential store").check();
    await page.getByLabel("Secret path").fill("twilio/prod");
    await page.getByLabel("Key", { exact: true }).fill("auth_token");
    await page.getByRole("button", { name: "Link asset" }).click();
    await page.getByRole("cell", { name: "Company <b>vault</b>: twilio/prod (auth_token), linked" }).waitFor();

    await page.getByLabel("New assets of Shared go to").selectOption("Company <b>vault</b>");
    await page.getByText("Now: Company <b>vault</b>.").waitFor();
    await page.getByLabel("Enter the value").check();
    assert.match(await page.getByLabel("Keep the value in").locator("option").first().textContent(), /This folder's store \(Company <b>vault<\/b>\)/);
    await assertAccessible("the Credential assets tab with a credential store");
  });
});

describe("Credential asset destinations", () => {
  it("says where a first use sent an asset, and lets its owner allow and take away destinations by keyboard", async () => {
    await page.getByRole("tab", { name: "Credential assets" }).click();
    await page.getByLabel("Asset name").fill("Twilio token");
    await page.getByLabel("Value", { exact: true }).fill(TOKEN);
    await page.getByRole("button", { name: "Create asset" }).click();
    const row = page.getByRole("row", { name: /Twilio token/ });
    await row.getByRole("cell", { name: "First use decides" }).waitFor();

    await page.getByRole("tab", { name: "Connections" }).click();
    await openTwilioForm();
    await fillTwilio();
    await page.getByRole("button", { name: "More options for Auth Token" }).click();
    await page.getByRole("menuitem", { name: "Use credential asset" }).click();
    await page.locator("#field-auth_token").selectOption({ label: "Twilio token (Shared)" });
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    await page.getByRole("status").filter({ hasText: "First use of credential asset “Twilio token”: from now on its value goes to twilio only" }).waitFor();

    await page.getByRole("tab", { name: "Credential assets" }).click();
    await row.getByRole("cell", { name: "twilio", exact: true }).waitFor();
    await page.getByRole("button", { name: "Destinations of asset Twilio token" }).focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog", { name: "Destinations of Twilio token" });
    await dialog.waitFor();
    await page.getByLabel("Allow a destination").fill("<b>nope</b>");
    await page.keyboard.press("Enter");
    await dialog.getByRole("alert").filter({ hasText: "no connector '<b>nope</b>'" }).waitFor();
    await page.getByLabel("Allow a destination").fill("http:https://api.example.com/v1");
    await page.keyboard.press("Enter");
    await dialog.getByText("http at https://api.example.com", { exact: true }).waitFor();
    assert.equal(await dialog.getByRole("alert").count(), 0, "the error goes once a destination is allowed");
    await assertAccessible("the Destinations dialog");
    await dialog.getByRole("button", { name: "Remove twilio from the destinations of Twilio token" }).click();
    await dialog.getByRole("button", { name: "Remove twilio from the destinations of Twilio token" }).waitFor({ state: "detached" });
    await page.keyboard.press("Escape");
    await row.getByRole("cell", { name: "http at https://api.example.com", exact: true }).waitFor();
  });
});

describe("Folders", () => {
  it("creates a sub-folder, moves through the tree with arrow keys, and names what a delete would remove", async () => {
    await page.getByRole("button", { name: "New folder" }).click();
    await page.getByLabel("Folder name").fill("Finance");
    await page.getByRole("button", { name: "Create", exact: true }).click();
    const finance = page.getByRole("treeitem", { name: "Finance" });
    await finance.waitFor();
    assert.equal(await finance.getAttribute("aria-selected"), "true");
    assert.equal(await finance.getAttribute("aria-level"), "2");

    await page.getByRole("tree").focus();
    await page.keyboard.press("ArrowUp");
    assert.equal(await page.getByRole("treeitem", { name: "Shared" }).getAttribute("aria-selected"), "true");
    await page.keyboard.press("ArrowLeft");
    await finance.waitFor({ state: "hidden" });
    await page.keyboard.press("ArrowRight");
    await finance.waitFor();

    await page.getByRole("button", { name: "Delete", exact: true }).first().click();
    assert.match(await page.getByRole("dialog").textContent(), /“Shared” holds 1 sub-folder/);
  });
});

describe("Row actions", () => {
  it("keeps Test as a button and the rest in a menu the keyboard reaches", async () => {
    await addTwilioConnection();
    const more = page.getByRole("button", { name: "More actions for Twilio +15551230001" });
    await more.focus();
    await page.keyboard.press("Enter");
    const menu = page.getByRole("menu", { name: "More actions for Twilio +15551230001" });
    assert.deepEqual(await menu.getByRole("menuitem").allTextContents(), ["Edit", "Rotate Auth Token", "Delete"]);
    assert.equal(await more.getAttribute("aria-expanded"), "true");
    assert.equal(await menu.getByRole("menuitem", { name: "Edit" }).evaluate((el) => el === document.activeElement), true);
    await page.keyboard.press("ArrowUp");
    assert.equal(await menu.getByRole("menuitem", { name: "Delete" }).evaluate((el) => el === document.activeElement), true);
    await page.keyboard.press("Escape");
    await menu.waitFor({ state: "hidden" });
    assert.equal(await more.evaluate((el) => el === document.activeElement), true, "focus goes back to the button");
    await page.keyboard.press("Enter");
    await page.keyboard.press("End");
    await page.keyboard.press("Enter");
    await page.getByRole("dialog", { name: "Delete connection" }).waitFor();
  });

  it("fit at the default size, with headers and controls whole, and scroll sideways at the minimum", async () => {
    await openTwilioForm();
    await page.getByLabel("Connection name").fill("A connection whose name is far longer than its column");
    await fillTwilio();
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    await page.getByRole("row", { name: /far longer/ }).waitFor();
    const wide = await page.evaluate(tableLayout);
    assert.deepEqual([wide.scrolls, wide.cutHeaders, wide.cutControls], [false, [], []], "nothing is cut at 1200×780");
    const time = page.locator(".table-body time");
    assert.match(await time.textContent(), /just now/);
    assert.match(await time.getAttribute("title"), /\d{4}/, "the exact time on hover");
    assert.equal(
      await page.locator(".table-body .name").getAttribute("title"),
      "A connection whose name is far longer than its column",
      "the full name on hover",
    );

    await page.setViewportSize({ width: 760, height: 480 });
    const narrow = await page.evaluate(tableLayout);
    assert.deepEqual([narrow.scrolls, narrow.cutHeaders], [true, []], "at 760×480 the table scrolls sideways");
  });
});

describe("Folder context menu", () => {
  for (const [how, open] of [
    ["a right click", () => page.getByRole("treeitem", { name: "Shared" }).click({ button: "right" })],
    ["Shift+F10", () => page.getByRole("tree").focus().then(() => page.keyboard.press("Shift+F10"))],
    ["the Menu key", () => page.getByRole("tree").focus().then(() => page.keyboard.press("ContextMenu"))],
  ]) {
    it(`opens on ${how} and runs the folder's actions`, async () => {
      await open();
      const menu = page.getByRole("menu", { name: "Actions for folder Shared" });
      await menu.waitFor();
      assert.deepEqual(await menu.getByRole("menuitem").allTextContents(), ["New folder", "Rename", "Move", "Delete"]);
      await page.keyboard.press("ArrowDown");
      await page.keyboard.press("Enter");
      const dialog = page.getByRole("dialog", { name: "Rename folder" });
      await dialog.waitFor();
      assert.equal(await page.getByLabel("Folder name").inputValue(), "Shared");
    });
  }

  it("closes on Esc and gives the keyboard back to the tree", async () => {
    await page.getByRole("tree").focus();
    await page.keyboard.press("Shift+F10");
    await page.getByRole("menu").waitFor();
    await page.keyboard.press("Escape");
    await page.getByRole("menu").waitFor({ state: "hidden" });
    assert.equal(await page.getByRole("tree").evaluate((el) => el === document.activeElement), true);
  });
});

describe("Accessibility", () => {
  it("axe finds no violation on any screen or dialog, in the light and the dark theme", async () => {
    await assertAccessible("the start screen");
    await page.getByRole("treeitem", { name: "Shared" }).click({ button: "right" });
    await assertAccessible("the folder context menu");
    await page.keyboard.press("Escape");
    for (const [button, title] of [["New folder", "New folder"], ["Rename", "Rename folder"], ["Move", "Move folder"], ["Delete", "Delete folder"]]) {
      await page.getByRole("toolbar", { name: "Folder actions" }).getByRole("button", { name: button }).click();
      await page.getByRole("dialog", { name: title }).waitFor();
      await assertAccessible(`the ${title} dialog`);
      await page.keyboard.press("Escape");
      await page.getByRole("dialog").waitFor({ state: "hidden" });
    }

    await page.getByRole("button", { name: "Add connection" }).first().click();
    await page.getByRole("combobox", { name: "Search connectors" }).fill("twi");
    await assertAccessible("the connector catalog");
    await page.keyboard.press("Enter");
    await page.getByLabel("Phone number").waitFor();
    await assertAccessible("the Twilio form");
    await fillTwilio({ sid: "AC123" });
    await page.getByLabel("Account SID").blur();
    await assertAccessible("the Twilio form with an error");
    await page.getByRole("button", { name: "More options for Auth Token" }).click();
    await assertAccessible("the Auth Token menu");
    await page.getByRole("menuitem", { name: "Use credential asset" }).click();
    await assertAccessible("the Twilio form with a credential asset");
    await page.getByRole("button", { name: "More options for Auth Token" }).click();
    await page.getByRole("menuitem", { name: "Type the value" }).click();
    await fillTwilio();
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });

    await page.getByRole("row", { name: /Twilio \+15551230001/ }).waitFor();
    await assertAccessible("the Connections tab");
    await page.getByRole("button", { name: "More actions for Twilio +15551230001" }).click();
    await assertAccessible("a row's actions menu");
    await page.getByRole("menuitem", { name: "Edit" }).click();
    await page.getByRole("dialog", { name: /Edit connection/ }).waitFor();
    await assertAccessible("the Edit dialog");
    await page.keyboard.press("Escape");
    await page.getByRole("button", { name: "More actions for Twilio +15551230001" }).click();
    await page.getByRole("menuitem", { name: "Rotate Auth Token" }).click();
    await page.getByRole("dialog", { name: "Rotate Auth Token" }).getByText("Shared/Twilio +15551230001").waitFor();
    await assertAccessible("the Rotate Auth Token dialog");
    await page.keyboard.press("Escape");
    await page.getByRole("button", { name: "More actions for Twilio +15551230001" }).click();
    await page.getByRole("menuitem", { name: "Delete" }).click();
    await page.getByRole("dialog", { name: "Delete connection" }).waitFor();
    await assertAccessible("the Delete connection dialog");
    await page.keyboard.press("Escape");

    await page.getByRole("tab", { name: "Credential assets" }).click();
    await assertAccessible("the Credential assets tab, empty");
    await page.getByLabel("Asset name").fill("Twilio token");
    await page.getByLabel("Value", { exact: true }).fill(TOKEN);
    await page.getByRole("button", { name: "Create asset" }).click();
    await page.getByRole("cell", { name: "Twilio token", exact: true }).waitFor();
    await assertAccessible("the Credential assets tab");
    await page.getByRole("button", { name: "Delete asset Twilio token" }).click();
    await assertAccessible("the Delete credential asset dialog");
    await page.keyboard.press("Escape");

    await page.getByRole("button", { name: "Rotation history" }).click();
    await page.getByRole("dialog", { name: "Rotation history" }).waitFor();
    await assertAccessible("the Rotation history dialog");
    await page.keyboard.press("Escape");

    await page.evaluate(() => (window.patchbayMock.state.vaultLocked = true));
    await page.getByRole("tab", { name: "Connections" }).click();
    await openTwilioForm();
    await fillTwilio({ phone: "+15551230002" });
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "The OS vault is locked" }).waitFor();
    await assertAccessible("the locked-keyring notice");
    await page.evaluate(() => (window.patchbayMock.state.vaultLocked = false));
  });
});

describe("Screenshots", () => {
  it("captures the Connections tab in both themes and the Twilio form for README", async () => {
    for (const phone of ["+15551230001", "+15551230002"]) {
      await addTwilioConnection({ phone });
    }
    const out = process.env.SCREENSHOT_DIR;
    if (!out) return;
    await page.screenshot({ path: join(out, "connections-tab.png") });
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: join(out, "connections-tab-dark.png") });
    await page.emulateMedia({ colorScheme: "light" });
    await openTwilioForm();
    await fillTwilio({ phone: "+1 555 123 0001" });
    await page.screenshot({ path: join(out, "twilio-form.png") });
  });
});
