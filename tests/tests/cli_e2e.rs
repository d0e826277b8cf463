//! The real `patchbay` binary against the fake Twilio and a real Secret Service:
//! the CLI contract, every error code, and that no secret escapes the vault.

use patchbay_tests::fake_twilio::{FakeTwilio, Fault};
use patchbay_tests::harness::{Patchbay, files_containing, patchbay_bin, require_secret_service, run_command};
use serde_json::Value;

fn setup() -> (FakeTwilio, Patchbay) {
    require_secret_service();
    let fake = FakeTwilio::start();
    let patchbay = Patchbay::new(&fake);
    (fake, patchbay)
}

fn add_twilio<'a>(folder: &'a str, phone: &'a str, sid: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args =
        vec!["--json", "connection", "add", "twilio", "--folder", folder, "--phone", phone, "--account-sid", sid];
    args.extend_from_slice(extra);
    args
}

#[test]
fn add_connection_end_to_end_keeps_every_secret_in_the_vault() {
    let (fake, patchbay) = setup();
    let seed = fake.seed();
    let token = seed.live.auth_token.clone();
    let mut transcript = String::new();
    let mut record = |run: patchbay_tests::harness::Run| {
        transcript.push_str(&run.stdout);
        transcript.push_str(&run.stderr);
        run
    };

    record(patchbay.run(&["--json", "folder", "create", "Shared/Finance"]).ok());
    let own = record(
        patchbay
            .run_with_stdin(
                &add_twilio("Shared/Finance", "+1 555-123-0001", &seed.live.sid, &["--auth-token-stdin"]),
                &format!("{token}\n"),
            )
            .ok(),
    )
    .json();
    assert_eq!(own["status"]["state"], "connected");
    assert_eq!(own["auth"]["kind"], "own");
    assert_eq!(own["details"]["account_name"], "Acme Operations");
    let own_id = own["id"].as_str().unwrap().to_owned();

    record(patchbay.run_with_stdin(&["--json", "asset", "create", "Twilio token", "--folder", "Shared"], &token).ok());
    let via_asset = record(
        patchbay
            .run(&add_twilio(
                "Shared/Finance",
                "+15551230002",
                &seed.live.sid,
                &["--auth-token-asset", "Twilio token", "--name", "Alerts"],
            ))
            .ok(),
    )
    .json();
    assert_eq!(via_asset["auth"], serde_json::json!({"kind": "asset", "name": "Twilio token", "folder": "Shared"}));

    let test_creds = record(
        patchbay
            .run_with_stdin(
                &add_twilio("Shared", "+15005550006", &seed.test.sid, &["--test-credentials", "--auth-token-stdin"]),
                &seed.test.auth_token,
            )
            .ok(),
    )
    .json();
    assert_eq!(test_creds["fields"]["test_credentials"], true);

    let wrong = record(patchbay.run_with_stdin(
        &add_twilio("Shared", "+15551230001", &seed.live.sid, &["--auth-token-stdin"]),
        &"ab".repeat(16),
    ));
    assert_eq!(wrong.error()["code"], "twilio_auth_failed");
    assert_eq!(wrong.error()["twilio_code"], 20003);

    let listed = record(patchbay.run(&["--json", "connection", "list", "--folder", "Shared/Finance"]).ok()).json();
    assert_eq!(listed["total"], 2);
    let shown = record(patchbay.run(&["--json", "connection", "show", &own_id]).ok()).json();
    assert_eq!(shown["id"], own_id.as_str());
    assert_eq!(shown["auth_method"], "auth_token");
    let shown_to_people = record(patchbay.run(&["connection", "show", &own_id]).ok()).stdout;
    let row = |label: &str| {
        let rows = shown_to_people.lines().filter_map(|line| line.split_once("  "));
        rows.map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned())).find(|(key, _)| key == label)
    };
    assert_eq!(row("auth method").unwrap().1, "Auth Token", "{shown_to_people}");
    assert_eq!(row("account").unwrap().1, "Acme Operations", "{shown_to_people}");
    assert_eq!(row("auth token").unwrap().1, "its own, in the OS vault", "{shown_to_people}");
    let tested = record(patchbay.run(&["--json", "connection", "test", via_asset["id"].as_str().unwrap()]).ok()).json();
    assert_eq!(tested["status"]["state"], "connected");
    record(patchbay.run(&["connection", "list"]).ok());
    record(patchbay.run(&["asset", "list"]).ok());

    // The secrets are in the real Secret Service, under this test's service name...
    let entries = patchbay.vault_entries();
    assert_eq!(entries.len(), 3, "own token, test token and the asset: {entries:?}");
    assert!(entries.contains(&format!("connection/{own_id}")));
    // ...and nowhere else: not in the database (WAL included), not in any output.
    for secret in [&token, &seed.test.auth_token] {
        assert_eq!(files_containing(patchbay.data_dir.path(), secret.as_bytes()), Vec::<std::path::PathBuf>::new());
        assert!(!transcript.contains(secret.as_str()), "a secret was printed");
    }
    let requests = serde_json::to_string(&fake.requests()).unwrap();
    assert!(!requests.contains(&token), "the fake records no credentials");

    patchbay.run(&["--json", "connection", "delete", &own_id]).ok();
    assert!(!patchbay.vault_entries().contains(&format!("connection/{own_id}")));
    patchbay.run(&["--json", "folder", "delete", "Shared", "--recursive"]).ok();
    assert_eq!(patchbay.vault_entries(), Vec::<String>::new(), "a recursive delete leaves no orphan secret");
}

#[test]
fn every_connect_rule_has_its_error_code() {
    let (fake, patchbay) = setup();
    let seed = fake.seed();
    let live = &seed.live;
    let cases: Vec<(Vec<&str>, &str, &str, Option<&str>)> = vec![
        (
            add_twilio("Shared", "5551230001", &live.sid, &["--auth-token-stdin"]),
            live.auth_token.as_str(),
            "invalid_input",
            Some("phone_number"),
        ),
        (
            add_twilio("Shared", "+15551230001", "AC12", &["--auth-token-stdin"]),
            &live.auth_token,
            "invalid_input",
            Some("account_sid"),
        ),
        (
            add_twilio("Shared", "+15551230001", &live.sid, &["--auth-token-stdin"]),
            "short",
            "invalid_input",
            Some("auth_token"),
        ),
        (
            add_twilio("Nowhere", "+15551230001", &live.sid, &["--auth-token-stdin"]),
            &live.auth_token,
            "folder_not_found",
            None,
        ),
        (
            add_twilio("Shared", "+15551230001", &live.sid, &["--test-credentials", "--auth-token-stdin"]),
            &live.auth_token,
            "twilio_test_credentials_expected",
            Some("test_credentials"),
        ),
        (
            add_twilio("Shared", "+15005550006", &seed.test.sid, &["--auth-token-stdin"]),
            &seed.test.auth_token,
            "twilio_live_credentials_expected",
            Some("test_credentials"),
        ),
        (
            add_twilio("Shared", "+15005550001", &seed.test.sid, &["--test-credentials", "--auth-token-stdin"]),
            &seed.test.auth_token,
            "twilio_test_phone_invalid",
            Some("phone_number"),
        ),
        (
            add_twilio("Shared", "+15551239999", &live.sid, &["--auth-token-stdin"]),
            &live.auth_token,
            "twilio_phone_not_in_account",
            Some("phone_number"),
        ),
        (
            add_twilio("Shared", "+15551238001", &seed.suspended.sid, &["--auth-token-stdin"]),
            &seed.suspended.auth_token,
            "twilio_auth_failed",
            None,
        ),
        (
            add_twilio("Shared", "+15551237001", &seed.closed.sid, &["--auth-token-stdin"]),
            &seed.closed.auth_token,
            "twilio_auth_failed",
            None,
        ),
        (
            add_twilio("Shared", "+15551230001", &live.sid, &["--auth-token-asset", "missing"]),
            "",
            "asset_not_found",
            Some("auth_token"),
        ),
    ];
    for (args, stdin, code, field) in cases {
        let error = patchbay.run_with_stdin(&args, stdin).error();
        assert_eq!(error["code"], code, "{args:?}: {error}");
        assert_eq!(error["field"].as_str(), field, "{args:?}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        if !stdin.is_empty() {
            assert!(!error.to_string().contains(stdin), "the secret is echoed in {error}");
        }
    }

    // Twilio's own words travel with the error: `twilio_message` in --json.
    let wrong = add_twilio("Shared", "+15551230001", &live.sid, &["--auth-token-stdin"]);
    let error = patchbay.run_with_stdin(&wrong, &"0".repeat(32)).error();
    assert_eq!(
        (error["code"].as_str(), error["twilio_message"].as_str()),
        (Some("twilio_auth_failed"), Some("Authenticate"))
    );

    let add_live = add_twilio("Shared", "+15551230001", &live.sid, &["--auth-token-stdin"]);
    fake.inject(Fault::RateLimit, 3);
    assert_eq!(patchbay.run_with_stdin(&add_live, &live.auth_token).code(), "twilio_rate_limited");
    fake.inject(Fault::Status(502), 3);
    assert_eq!(patchbay.run_with_stdin(&add_live, &live.auth_token).code(), "twilio_server_error");
    let mut unreachable = Patchbay::new(&fake);
    unreachable.set_env("PATCHBAY_TWILIO_API_BASE", "http://127.0.0.1:9");
    assert_eq!(unreachable.run_with_stdin(&add_live, &live.auth_token).code(), "twilio_unreachable");

    assert_eq!(patchbay.run(&["--json", "connection", "list"]).ok().json()["total"], 0, "nothing failed was saved");
    assert_eq!(patchbay.vault_entries(), Vec::<String>::new(), "nothing failed left a secret");
}

#[test]
fn folders_assets_and_names_follow_the_tree_rules() {
    let (fake, patchbay) = setup();
    let seed = fake.seed();
    let run = |args: &[&str]| patchbay.run(args);
    run(&["--json", "folder", "create", "Shared/Finance"]).ok();
    run(&["--json", "folder", "create", "Shared/Finance/EMEA"]).ok();
    assert_eq!(run(&["--json", "folder", "create", "Shared/FINANCE"]).code(), "name_taken");
    assert_eq!(run(&["--json", "folder", "create", "Missing/Child"]).code(), "folder_not_found");
    assert_eq!(run(&["--json", "folder", "create", &format!("Shared/{}", "x".repeat(121))]).code(), "invalid_input");

    let renamed = run(&["--json", "folder", "rename", "Shared/Finance", " Accounting "]).ok().json();
    assert_eq!(renamed["path"], "Shared/Accounting");
    let moved = run(&["--json", "folder", "move", "Shared/Accounting", "--top-level"]).ok().json();
    assert_eq!(moved["path"], "Accounting");
    run(&["--json", "folder", "move", "Accounting", "--to", "Shared"]).ok();
    let tree: Vec<String> = run(&["--json", "folder", "list"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tree, ["Shared", "Shared/Accounting", "Shared/Accounting/EMEA"]);
    let human = run(&["folder", "list"]).ok().stdout;
    assert_eq!(human, "Shared\n  Accounting\n    EMEA\n");

    patchbay
        .run_with_stdin(&["--json", "asset", "create", "token", "--folder", "Shared/Accounting"], &seed.live.auth_token)
        .ok();
    assert_eq!(
        patchbay.run_with_stdin(&["--json", "asset", "create", "token", "--folder", "Shared/Accounting"], "x").code(),
        "name_taken"
    );
    patchbay
        .run(&add_twilio("Shared/Accounting/EMEA", "+15551230001", &seed.live.sid, &["--auth-token-asset", "token"]))
        .ok();
    let in_use = run(&["--json", "asset", "delete", "token", "--folder", "Shared/Accounting"]).error();
    assert_eq!(in_use["code"], "asset_in_use");
    assert!(in_use["message"].as_str().unwrap().contains("Shared/Accounting/EMEA/Twilio +15551230001"));

    let not_empty = run(&["--json", "folder", "delete", "Shared/Accounting"]).error();
    assert_eq!(not_empty["code"], "folder_not_empty");
    assert!(not_empty["message"].as_str().unwrap().contains("1 sub-folder, 1 connection and 1 credential asset"));
    assert_eq!(run(&["--json", "connection", "show", "no-such-id"]).code(), "not_found");
    assert_eq!(run(&["--json", "folder", "delete", "Nope"]).code(), "folder_not_found");

    let removed = run(&["--json", "folder", "delete", "Shared/Accounting", "--recursive"]).ok().json();
    assert_eq!(removed["removed"], serde_json::json!({"folders": 1, "connections": 1, "assets": 1}));
    assert_eq!(patchbay.vault_entries(), Vec::<String>::new());
}

#[test]
fn the_catalog_is_searchable() {
    let (_fake, patchbay) = setup();
    let found = patchbay.run(&["--json", "connectors", "--search", "TWÍ"]).ok().json();
    assert_eq!(found[0]["key"], "twilio");
    assert_eq!(found[0]["element_key"], "twiliov2");
    let method = &found[0]["auth_methods"][0];
    assert_eq!(method["key"], "auth_token");
    assert_eq!(method["features"], serde_json::json!(["token_rotation", "message_events"]));
    let fields: Vec<&str> = method["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(fields, ["phone_number", "test_credentials", "account_sid", "auth_token"]);
    let secrets: Vec<&str> = method["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "secret")
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(secrets, ["auth_token"]);
    let table = patchbay.run(&["connectors"]).ok().stdout;
    assert!(table.contains("twiliov2") && table.contains("Auth Token"), "{table}");
    assert_eq!(patchbay.run(&["--json", "connectors", "--search", "salesforce"]).ok().json(), Value::Array(vec![]));
}

#[test]
fn secrets_are_never_taken_as_arguments() {
    let (fake, patchbay) = setup();
    let seed = fake.seed();
    let run =
        patchbay.run(&add_twilio("Shared", "+15551230001", &seed.live.sid, &["--auth-token", &seed.live.auth_token]));
    assert_eq!(run.code, Some(2));
    assert_eq!(run.error()["code"], "invalid_input");
    let empty =
        patchbay.run_with_stdin(&add_twilio("Shared", "+15551230001", &seed.live.sid, &["--auth-token-stdin"]), "");
    assert_eq!((empty.code().as_str(), empty.error()["field"].as_str()), ("invalid_input", Some("stdin")));
    assert!(fake.requests().is_empty());
}

#[test]
fn vault_trouble_is_named_and_nothing_is_half_saved() {
    let (fake, patchbay) = setup();
    let seed = fake.seed();
    let add = add_twilio("Shared", "+15551230001", &seed.live.sid, &["--auth-token-stdin"]);

    // No session bus at all: the vault is unavailable.
    let mut no_bus = patchbay.command(&add);
    no_bus.env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let run = run_command(no_bus, &seed.live.auth_token);
    assert_eq!(run.code(), "vault_unavailable", "{}", run.stderr);

    // A Secret Service whose keyring was never unlocked: access is refused.
    let keyring_home = tempfile::tempdir().unwrap();
    let mut locked = std::process::Command::new("dbus-run-session");
    locked
        .env("XDG_DATA_HOME", keyring_home.path())
        .args([
            "--",
            "sh",
            "-c",
            "gnome-keyring-daemon --start --components=secrets >/dev/null 2>&1; exec \"$@\"",
            "sh",
        ])
        .arg(patchbay_bin())
        .arg("--data-dir")
        .arg(patchbay.data_dir.path())
        .args(&add)
        .env("PATCHBAY_TWILIO_API_BASE", fake.api_base())
        .env("PATCHBAY_VAULT_SERVICE", &patchbay.vault_service);
    let run = run_command(locked, &seed.live.auth_token);
    assert_eq!(run.code(), "vault_locked", "{}", run.stderr);
    assert!(run.error()["message"].as_str().unwrap().contains("unlock"));

    assert_eq!(patchbay.run(&["--json", "connection", "list"]).ok().json()["total"], 0, "no row without its secret");
    // Commands that need no secret still work without a vault.
    let mut folders = patchbay.command(&["--json", "folder", "list"]);
    folders.env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    assert_eq!(run_command(folders, "").ok().json()[0]["path"], "Shared");
}
