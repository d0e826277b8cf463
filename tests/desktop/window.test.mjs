// The real window: the built `patchbay-desktop` under Xvfb, driven over WebDriver
// (tauri-driver + WebKitWebDriver), against the fake Twilio and the real Secret Service
// of tests/run.sh. Creates a folder, adds a Twilio connection through the catalog, and
// checks that the CLI sees what the window saved, that nothing in the table is cut at the
// default size, and runs axe-core in the window. Leaves screenshots of the Twilio form
// and the Connections tab in tests/desktop/artifacts/. Registers a credential store (a
// real OpenBao) and links a credential asset to a secret in it.
import { after, before, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
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

/** A real OpenBao (`bao server -dev`, BAO_BIN from tests/run.sh) on a free loopback port. */
async function startOpenBao() {
  const port = await new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
  const rootToken = `root-${process.pid}`;
  const address = `http://127.0.0.1:${port}`;
  const child = spawn(process.env.BAO_BIN ?? "bao", ["server", "-dev", `-dev-root-token-id=${rootToken}`, `-dev-listen-address=127.0.0.1:${port}`], {
    stdio: "ignore",
  });
  const bao = (...args) =>
    execFileSync(process.env.BAO_BIN ?? "bao", args, { env: { ...process.env, BAO_ADDR: address, BAO_TOKEN: rootToken } }).toString().trim();
  await waitFor("OpenBao to answer", () => {
    try {
      return bao("status").includes("Sealed");
    } catch {
      return false;
    }
  });
  return { child, address, bao };
}

it("registers a credential store and links a credential asset to a secret in it", async () => {
  const openbao = await startOpenBao();
  const policy = join(mkdtempSync(join(tmpdir(), "patchbay-policy-")), "policy.hcl");
  writeFileSync(policy, 'path "secret/data/twilio/*" { capabilities = ["read"] }\n');
  openbao.bao("policy", "write", "patchbay-twilio", policy);
  const token = openbao.bao("token", "create", "-field=token", "-policy=patchbay-twilio");
  openbao.bao("kv", "put", "secret/twilio/prod", `auth_token=${seed.live.auth_token}`, "owner=ops");
  try {
    await window.click(".sidebar-head button.link:last-of-type");
    await waitFor("the Credential stores dialog", () => window.find("#store-name"));
    await window.type("#store-name", "Company vault");
    await window.type("#store-address", openbao.address);
    await window.type("#store-token", token);
    await waitFor("Add store to be enabled", () => window.enabled('.store-form button[type="submit"]'));
    await window.click('.store-form button[type="submit"]');
    await waitFor("the store registered", async () => (await window.text(".store-status")).includes("Registered")).catch(shown);
    assert.match(await window.text("table.stores"), /Company vault[^]*secret[^]*Token/);
    await assertAccessible("Settings → Credential stores");
    writeFileSync(join(artifacts, "credential-stores.png"), await window.screenshot());
    await window.click("dialog[open] .dialog-actions button");

    await window.click("#tab-assets");
    await waitFor("the link option", () => window.find("#asset-source-link"));
    await window.click("#asset-source-link");
    await window.type("#asset-name", "Twilio prod");
    await window.type("#asset-link-path", "twilio/prod");
    await window.type("#asset-link-key", "auth_token");
    await window.click('.asset-form button[type="submit"]');
    await waitFor("the linked asset", async () => (await window.text("table.assets")).includes("linked")).catch(shown);
    assert.match(await window.text("table.assets"), /Twilio prod[^]*Company vault: twilio\/prod \(auth_token\), linked/);
    await assertAccessible("the Credential assets tab with a linked asset");

    const assets = JSON.parse(execFileSync(bin("patchbay"), ["--json", "asset", "list"], { env }).toString());
    const linked = assets.find((asset) => asset.name === "Twilio prod");
    assert.deepEqual([linked.store, linked.link], ["Company vault", { path: "twilio/prod", key: "auth_token" }]);
    const holding = readdirSync(env.PATCHBAY_DATA_DIR, { recursive: true })
      .map((name) => join(env.PATCHBAY_DATA_DIR, name))
      .filter((path) => statSync(path).isFile() && readFileSync(path).includes(seed.live.auth_token));
    assert.deepEqual(holding, [], "no copy of the linked secret in the data folder");
  } finally {
    openbao.child.kill();
  }
});
