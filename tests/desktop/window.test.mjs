// The real window: the built `patchbay-desktop` under Xvfb, driven over WebDriver
// (tauri-driver + WebKitWebDriver), against the fake Twilio and the real Secret Service
// of tests/run.sh. Creates a folder, adds a Twilio connection through the catalog, and
// checks that the CLI sees what the window saved, that nothing in the table is cut at the
// default size, and runs axe-core in the window. Leaves screenshots of the Twilio form
// and the Connections tab in tests/desktop/artifacts/.
import { after, before, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Window, waitFor } from "./webdriver.mjs";
import { tableLayout } from "../../ui/tests/browser/table-layout.mjs";

const repo = fileURLToPath(new URL("../../", import.meta.url));
const bin = (name) => join(process.env.CARGO_TARGET_DIR ?? join(repo, "target"), "debug", name);
const artifacts = join(repo, "tests", "desktop", "artifacts");

let fake, window, env, seed, slackSeed, sendgridSeed, rest;

before(async () => {
  fake = spawn(bin("fake-services"), [], { stdio: ["ignore", "pipe", "inherit"] });
  const announced = JSON.parse(await new Promise((resolve) => createInterface({ input: fake.stdout }).once("line", resolve)));
  seed = announced.seed;
  slackSeed = announced.slack.seed;
  sendgridSeed = announced.sendgrid.seed;
  rest = announced.http;
  env = {
    ...process.env,
    PATCHBAY_DATA_DIR: mkdtempSync(join(tmpdir(), "patchbay-window-")),
    PATCHBAY_TWILIO_API_BASE: announced.api_base,
    PATCHBAY_TWILIO_ACCOUNTS_BASE: announced.accounts_base,
    PATCHBAY_SLACK_API_BASE: announced.slack.api_base,
    PATCHBAY_SENDGRID_API_BASE: announced.sendgrid.api_base,
    PATCHBAY_SENDGRID_EU_API_BASE: announced.sendgrid.eu_api_base,
    PATCHBAY_HTTP_LOOPBACK_ONLY: "1",
    PATCHBAY_VAULT_SERVICE: `patchbay-window-${process.pid}`,
  };
  window = await Window.open(bin("patchbay-desktop"), env);
});

after(async () => {
  await window?.close();
  fake?.kill();
});

/** Fails with what the window shows (the open dialog, or the page): a Connect refused says why. */
async function shown(err) {
  const text = await window.execute(() => document.querySelector("dialog[open]")?.innerText ?? document.body.innerText);
  throw new Error(`${err.message}; the window shows: ${text}`);
}

/** Runs axe-core inside the real window and fails on any violation. */
async function assertAccessible(screen) {
  await window.inject(readFileSync(join(repo, "ui", "node_modules", "axe-core", "axe.min.js"), "utf8"));
  const { passes, violations } = await window.executeAsync(`
    const results = await axe.run(document, { resultTypes: ["violations"] });
    return {
      passes: results.passes.length,
      violations: results.violations.map((v) => v.impact + " " + v.id + ": " + v.nodes.map((n) => n.target.join(" ")).join(", ")),
    };`);
  assert.deepEqual(violations, [], `axe-core in the real window: ${screen}`);
  assert.ok(passes >= 10, `${screen}: axe checked only ${passes} rules`);
}

it("adds a Twilio connection in the real window, and the CLI sees it", async () => {
  const { live } = seed;
  await waitFor("the folder tree", () => window.find('[role="treeitem"]'));

  await window.click(".folder-actions button");
  await window.type("#folder-name", "Finance");
  await window.click('dialog[open] button[type="submit"]');
  await waitFor("the new folder", async () => (await window.text(".folder-title")) === "Shared/Finance");

  await window.click(".empty-state button");
  await window.type("#connector-search", "twi");
  await waitFor("Twilio in the catalog", async () => (await window.text("#connector-twilio")).includes("Twilio"));
  await window.type("#connector-search", "\uE007"); // Enter picks the highlighted connector
  await window.type("#field-phone_number", live.phone_numbers[0]);
  await window.type("#field-account_sid", live.sid);
  await window.type("#field-auth_token", live.auth_token);
  await waitFor("Connect to be enabled", () => window.enabled('dialog[open] button[type="submit"]'));
  mkdirSync(artifacts, { recursive: true });
  writeFileSync(join(artifacts, "twilio-form.png"), await window.screenshot());
  await window.click('dialog[open] button[type="submit"]');

  const status = await waitFor("the new row", () => window.text(".table-body .row .status")).catch(shown);
  assert.equal(status, "Connected");
  writeFileSync(join(artifacts, "connections-tab.png"), await window.screenshot());

  const layout = await window.execute(tableLayout);
  assert.deepEqual(
    [layout.viewport, layout.scrolls, layout.cutHeaders, layout.cutControls],
    ["1200×780", false, [], []],
    "at the default size no header or row control is cut",
  );

  await assertAccessible("the Connections tab, light theme");

  const listed = JSON.parse(
    execFileSync(bin("patchbay"), ["--json", "connection", "list", "--folder", "Shared/Finance"], { env }).toString(),
  );
  assert.equal(listed.total, 1);
  assert.equal(listed.items[0].fields.phone_number, live.phone_numbers[0]);
  assert.equal(listed.items[0].status.state, "connected");
});

it("adds a Slack connection beside it: the form asks for the bot token alone", async () => {
  await window.click(".toolbar button.primary");
  await window.type("#connector-search", "slack");
  await waitFor("Slack in the catalog", async () => (await window.text("#connector-slack")).includes("Slack"));
  await window.type("#connector-search", "\uE007");
  await waitFor("the bot token field", () => window.find("#field-bot_token"));
  assert.equal(await window.execute(() => document.querySelector("#field-account_sid") === null), true, "no Twilio field on Slack's form");
  await window.type("#field-bot_token", slackSeed.bot.token);
  await waitFor("Connect to be enabled", () => window.enabled('dialog[open] button[type="submit"]'));
  await window.click('dialog[open] button[type="submit"]');
  const rows = () => window.execute(() => document.querySelector(".table-body")?.innerText ?? "");
  await waitFor("two rows", async () => (await rows()).includes("Slack Acme Robots")).catch(shown);
  assert.match(await rows(), /Acme Robots[^]*patchbay[^]*channels:read, chat:write, users:read/);

  const layout = await window.execute(tableLayout);
  assert.deepEqual([layout.scrolls, layout.cutHeaders, layout.cutControls], [false, [], []], "two connectors' rows fit");

  const listed = JSON.parse(
    execFileSync(bin("patchbay"), ["--json", "connection", "list", "--folder", "Shared/Finance"], { env }).toString(),
  );
  assert.deepEqual(listed.items.map((c) => [c.connector, c.status.state]).sort(), [["slack", "connected"], ["twilio", "connected"]]);
});

it("adds a Twilio SendGrid connection: a region picker, the sender, the key", async () => {
  await window.click(".toolbar button.primary");
  await window.type("#connector-search", "sendgrid");
  await waitFor("SendGrid in the catalog", async () => (await window.text("#connector-sendgrid")).includes("SendGrid"));
  await window.type("#connector-search", "\uE007");
  await waitFor("the sender field", () => window.find("#field-sender_email"));
  assert.equal(await window.execute(() => document.querySelector("#field-region").value), "global");
  await window.type("#field-sender_email", sendgridSeed.verified_sender);
  await window.type("#field-api_key", sendgridSeed.full.key);
  await waitFor("Connect to be enabled", () => window.enabled('dialog[open] button[type="submit"]'));
  await window.click('dialog[open] button[type="submit"]');
  const rows = () => window.execute(() => document.querySelector(".table-body")?.innerText ?? "");
  await waitFor("three rows", async () => (await rows()).includes("Twilio SendGrid alerts@acme.example")).catch(shown);
  assert.match(await rows(), /verified Single Sender/);
  await assertAccessible("three connectors' rows");
});

it("adds a Twilio connection by API key: the form's auth-method picker", async () => {
  const { live, api_keys } = seed;
  await window.click(".toolbar button.primary");
  await window.type("#connector-search", "twi");
  await waitFor("Twilio in the catalog", async () => (await window.text("#connector-twilio")).includes("Twilio"));
  await window.type("#connector-search", "\uE007");
  await window.click("#auth-method-api_key");
  await waitFor("the API key fields", () => window.find("#field-api_key_sid"));
  await window.type("#field-name", "By key");
  await window.type("#field-account_sid", live.sid);
  await window.type("#field-api_key_sid", api_keys.standard.sid);
  await window.type("#field-api_key_secret", api_keys.standard.secret);
  await waitFor("Connect to be enabled", () => window.enabled('dialog[open] button[type="submit"]'));
  await window.click('dialog[open] button[type="submit"]');
  const rows = () => window.execute(() => document.querySelector(".table-body")?.innerText ?? "");
  await waitFor("the key's row", async () => (await rows()).includes("By key")).catch(shown);
  const listed = JSON.parse(
    execFileSync(bin("patchbay"), ["--json", "connection", "list", "--folder", "Shared/Finance", "--search", "By key"], { env }).toString(),
  );
  assert.deepEqual([listed.items[0].auth_method, listed.items[0].details.api_key_type], ["api_key", "Standard"]);
});

it("adds an HTTP connection with a bearer token", async () => {
  await window.click(".toolbar button.primary");
  await window.type("#connector-search", "rest");
  await waitFor("HTTP in the catalog", async () => (await window.text("#connector-http")).includes("HTTP"));
  await window.type("#connector-search", "\uE007");
  await window.click("#auth-method-bearer");
  await waitFor("the token field", () => window.find("#field-token"));
  await window.type("#field-base_url", rest.base);
  await window.type("#field-test_path", "/bearer/status");
  await window.type("#field-token", rest.seed.token);
  await waitFor("Connect to be enabled", () => window.enabled('dialog[open] button[type="submit"]'));
  await window.click('dialog[open] button[type="submit"]');
  const rows = () => window.execute(() => document.querySelector(".table-body")?.innerText ?? "");
  await waitFor("the HTTP row", async () => (await rows()).includes("HTTP 127.0.0.1")).catch(shown);
  assert.match(await rows(), /200 OK/);
  const layout = await window.execute(tableLayout);
  assert.deepEqual([layout.scrolls, layout.cutHeaders, layout.cutControls], [false, [], []], "five connections of four connectors fit");
  writeFileSync(join(artifacts, "connections-tab-connectors.png"), await window.screenshot());
});

it("follows the desktop's dark theme, with no accessibility violation there either", async () => {
  await window.close();
  window = await Window.open(bin("patchbay-desktop"), { ...env, GTK_THEME: "Adwaita:dark" });
  // Shared is empty: its empty state shows the primary button the dark theme once failed.
  await waitFor("the empty state", () => window.find(".empty-state button.primary"));
  assert.equal(await window.execute(() => matchMedia("(prefers-color-scheme: dark)").matches), true);
  assert.equal(await window.execute(() => getComputedStyle(document.documentElement).backgroundColor), "rgb(21, 24, 29)");
  await assertAccessible("the empty Connections tab, dark theme");
  writeFileSync(join(artifacts, "connections-tab-dark.png"), await window.screenshot());
});
