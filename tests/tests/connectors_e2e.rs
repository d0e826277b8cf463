//! Connectors beyond Twilio, end to end: the real `patchbay` binary (CLI and `serve`)
//! against each service's fake and the real Secret Service.

use patchbay_tests::fake_http::FakeHttp;
use patchbay_tests::fake_sendgrid::FakeSendGrid;
use patchbay_tests::fake_slack::FakeSlack;
use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::harness::{Patchbay, files_containing, require_secret_service};
use patchbay_tests::serve::Server;
use reqwest::StatusCode;
use serde_json::json;

fn setup() -> (FakeTwilio, FakeSlack, Patchbay) {
    require_secret_service();
    let twilio = FakeTwilio::start();
    let slack = FakeSlack::start();
    let mut patchbay = Patchbay::new(&twilio);
    patchbay.set_env("PATCHBAY_SLACK_API_BASE", slack.api_base());
    (twilio, slack, patchbay)
}

#[test]
fn sendgrid_connects_from_the_cli_and_the_api_on_either_region() {
    let (_twilio, _slack, mut patchbay) = setup();
    let sendgrid = FakeSendGrid::start();
    patchbay.set_env("PATCHBAY_SENDGRID_API_BASE", sendgrid.api_base());
    patchbay.set_env("PATCHBAY_SENDGRID_EU_API_BASE", sendgrid.eu_api_base());
    let seed = sendgrid.seed();
    let sender = format!("sender_email={}", seed.verified_sender);
    let add = [
        "--json",
        "connection",
        "add",
        "sendgrid",
        "--folder",
        "Shared",
        "--field",
        &sender,
        "--secret-stdin",
        "api_key",
    ];
    let made = patchbay.run_with_stdin(&add, &seed.full.key).ok().json();
    assert_eq!(made["details"]["sender_status"], "verified Single Sender");
    assert_eq!(made["fields"]["region"], "global");
    let refused = patchbay.run_with_stdin(&add, &seed.read_only.key);
    assert_eq!((refused.code().as_str(), refused.error()["field"].as_str()), ("sendgrid_cannot_send", Some("api_key")));
    let listed = patchbay.run(&["connection", "list"]).ok().stdout;
    assert!(listed.contains("Sender: alerts@acme.example") && listed.contains("Plan: paid"), "{listed}");
    assert_eq!(files_containing(patchbay.data_dir.path(), seed.full.key.as_bytes()), Vec::<std::path::PathBuf>::new());

    let server = Server::start(&patchbay);
    let (status, created) = server.post(&json!({
        "element": { "key": "sendgrid" }, "name": "EU mail",
        "configuration": { "region": "eu", "sender_email": seed.verified_sender, "api_key": seed.eu.key }
    }));
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["configuration"]["api_key"], "********");
    assert_eq!(created["configuration"]["region"], "eu");
    assert!(sendgrid.requests().iter().any(|r| r.host == "eu"));
}

#[test]
fn slack_connects_from_the_cli_and_keeps_its_token_only_in_the_vault() {
    let (_twilio, slack, patchbay) = setup();
    let seed = slack.seed();
    let add = ["--json", "connection", "add", "slack", "--folder", "Shared", "--secret-stdin", "bot_token"];
    let made = patchbay.run_with_stdin(&add, &seed.bot.token).ok().json();
    assert_eq!((made["connector"].as_str(), made["name"].as_str()), (Some("slack"), Some("Slack Acme Robots")));
    assert_eq!(made["details"]["scopes"], "channels:read, chat:write, users:read");
    let id = made["id"].as_str().unwrap();

    // People see the connector's own summary.
    let shown = patchbay.run(&["connection", "show", id]).ok().stdout;
    assert!(shown.lines().any(|line| line.starts_with("workspace") && line.ends_with("Acme Robots")), "{shown}");
    assert!(shown.lines().any(|line| line.starts_with("bot user oauth token")), "{shown}");
    let listed = patchbay.run(&["connection", "list"]).ok().stdout;
    assert!(listed.contains("Slack") && listed.contains("Workspace: Acme Robots"), "{listed}");

    // Each refusal has its code; the token is never echoed.
    let refused = patchbay.run_with_stdin(&add, &seed.read_only.token);
    assert_eq!(refused.code(), "slack_missing_scope");
    assert_eq!(refused.error()["field"], "bot_token");
    assert_eq!(refused.error()["service_code"], "missing_scope");
    let revoked = patchbay.run_with_stdin(&add, &seed.revoked.token);
    assert_eq!(revoked.code(), "slack_token_revoked");
    assert!(!revoked.stderr.contains(&seed.revoked.token));
    // The secret is named by the connector's field; another name is refused.
    let misnamed = ["--json", "connection", "add", "slack", "--folder", "Shared", "--secret-stdin", "auth_token"];
    let refused = patchbay.run_with_stdin(&misnamed, &seed.bot.token);
    assert!(refused.error()["message"].as_str().unwrap().contains("secret field is 'bot_token'"), "{refused:?}");

    // Test connection reads the token from the vault again.
    let tested = patchbay.run(&["--json", "connection", "test", id]).ok().json();
    assert_eq!(tested["status"]["state"], "connected");
    assert_eq!(patchbay.vault_secret(&format!("connection/{id}")), Some(seed.bot.token.clone()));
    assert_eq!(files_containing(patchbay.data_dir.path(), seed.bot.token.as_bytes()), Vec::<std::path::PathBuf>::new());

    // Rotation is Twilio's: the CLI refuses it for Slack.
    let rotate = patchbay.run(&["--json", "credential", "rotate", "--connection", id, "--yes"]);
    assert_eq!(rotate.code(), "invalid_input");

    // The catalog lists Slack with its element key and its one auth method.
    let catalog = patchbay.run(&["--json", "connectors", "--search", "slack"]).ok().json();
    assert_eq!(catalog[0]["element_key"], "slack");
    assert_eq!(catalog[0]["auth_methods"][0]["fields"][0]["kind"], "secret");
}

#[test]
fn slack_instances_are_provisioned_by_their_element_key() {
    let (_twilio, slack, patchbay) = setup();
    let server = Server::start(&patchbay);
    let token = slack.seed().bot.token;
    let (status, created) = server.post(&json!({
        "element": { "key": "slack" }, "name": "Robots", "configuration": { "token": token }
    }));
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["element"], json!({ "key": "slack", "name": "Slack" }));
    assert_eq!(created["configuration"]["token"], "********");
    assert_eq!(created["configuration"]["authentication.type"], "bot_token");
    assert!(created["configuration"].get("event.notification.enabled").is_none(), "Slack has no events: {created}");

    let (status, refused) = server.post(&json!({
        "element": { "key": "slack" }, "name": "Events", "configuration": { "token": token, "event.notification.enabled": true }
    }));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("has no events"), "{refused}");

    let (status, unknown) = server.post(&json!({
        "element": { "key": "slack" }, "name": "Twilio words", "configuration": { "token": token, "username": "AC1" }
    }));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(unknown["message"].as_str().unwrap().starts_with("unknown configuration entry 'username'"), "{unknown}");

    let (_, listed) = server.get("/instances?element=slack");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (_, twilio_only) = server.get("/instances?element=twiliov2");
    assert_eq!(twilio_only, json!([]));
}

#[test]
fn twilio_api_keys_connect_from_the_cli_and_the_api() {
    let (twilio, _slack, patchbay) = setup();
    let seed = twilio.seed();
    let key = &seed.api_keys.standard;
    let add = |key_sid: &str| {
        vec![
            "--json",
            "connection",
            "add",
            "twilio",
            "--auth-method",
            "api_key",
            "--folder",
            "Shared",
            "--account-sid",
            &seed.live.sid,
            "--field",
            "phone_number=+1 555 123 0001",
            "--field",
            &format!("api_key_sid={key_sid}"),
            "--secret-stdin",
            "api_key_secret",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    let args = add(&key.sid);
    let made = patchbay.run_with_stdin(&args.iter().map(String::as_str).collect::<Vec<_>>(), &key.secret).ok().json();
    assert_eq!(
        (made["auth_method"].as_str(), made["details"]["api_key_type"].as_str()),
        (Some("api_key"), Some("Standard"))
    );
    assert_eq!(made["fields"]["phone_number"], "+15551230001");
    let shown = patchbay.run(&["connection", "show", made["id"].as_str().unwrap()]).ok().stdout;
    assert!(shown.lines().any(|line| line.starts_with("auth method") && line.ends_with("API Key")), "{shown}");
    assert!(shown.lines().any(|line| line.starts_with("api key secret")), "the secret's row says where it is: {shown}");

    // The Auth Token shorthand names the wrong secret for this method.
    let mut wrong_flag = args.clone();
    wrong_flag.truncate(wrong_flag.len() - 2);
    wrong_flag.push("--auth-token-stdin".into());
    let refused = patchbay.run_with_stdin(&wrong_flag.iter().map(String::as_str).collect::<Vec<_>>(), &key.secret);
    assert!(refused.error()["message"].as_str().unwrap().contains("secret field is 'api_key_secret'"), "{refused:?}");

    let other = add(&seed.api_keys.other_account_main.sid);
    let refused = patchbay.run_with_stdin(
        &other.iter().map(String::as_str).collect::<Vec<_>>(),
        &seed.api_keys.other_account_main.secret,
    );
    assert_eq!(refused.code(), "twilio_api_key_other_account");

    let server = Server::start(&patchbay);
    let (status, created) = server.post(&json!({
        "element": { "key": "twiliov2" }, "name": "By key",
        "configuration": { "authentication.type": "api_key", "account_sid": seed.live.sid,
                           "api_key_sid": seed.api_keys.main.sid, "api_key_secret": seed.api_keys.main.secret }
    }));
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["configuration"]["api_key_secret"], "********");
    assert_eq!(created["configuration"]["authentication.type"], "api_key");
    assert_eq!(created["accountName"], "Acme Operations", "a Main key reads the Account");
    let (status, refused) = server.post(&json!({
        "element": { "key": "twiliov2" }, "name": "Events by key",
        "configuration": { "authentication.type": "api_key", "account_sid": seed.live.sid,
                           "api_key_sid": key.sid, "api_key_secret": key.secret, "event.notification.enabled": true }
    }));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused["message"].as_str().unwrap().contains("Twilio with API Key has no events"), "{refused}");
}

#[test]
fn any_rest_service_connects_through_the_http_connector() {
    let (_twilio, _slack, patchbay) = setup();
    let rest = FakeHttp::start();
    let seed = rest.seed();
    let base = format!("base_url={}", rest.base());
    let basic = [
        "--json",
        "connection",
        "add",
        "http",
        "--auth-method",
        "basic",
        "--folder",
        "Shared",
        "--field",
        &base,
        "--field",
        "test_path=/basic/status",
        "--field",
        "username=robot",
        "--secret-stdin",
        "password",
    ];
    let made = patchbay.run_with_stdin(&basic, &seed.password).ok().json();
    assert_eq!(made["details"]["status"], "204 No Content");
    let refused = patchbay.run_with_stdin(&basic, "wrong");
    assert_eq!((refused.code().as_str(), refused.error()["service_code"].as_str()), ("http_unauthorized", Some("401")));

    let add_open = |base: &str| {
        let base = format!("base_url={base}");
        let args = ["--json", "connection", "add", "http", "--auth-method", "none", "--folder", "Shared"];
        patchbay.run(&[&args[..], &["--field", &base, "--field", "test_path=/status"]].concat())
    };
    let made = add_open(rest.base()).ok().json();
    let shown = patchbay.run(&["connection", "show", made["id"].as_str().unwrap()]).ok().stdout;
    assert!(shown.lines().any(|line| line.starts_with("answered") && line.ends_with("200 OK")), "{shown}");
    let refused = add_open("http://api.example.com");
    assert_eq!((refused.code().as_str(), refused.error()["field"].as_str()), ("invalid_input", Some("base_url")));

    // The REST service listens on this machine.
    let server = Server::start_allowing(&patchbay, "loopback");
    let (status, created) = server.post(&json!({
        "element": { "key": "http" }, "name": "Keyed",
        "configuration": { "authentication.type": "api_key_header", "base_url": rest.base(), "test_path": "/key/status",
                           "header_name": seed.api_key_header, "api_key": seed.api_key }
    }));
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["configuration"]["api_key"], "********");
    assert_eq!(files_containing(patchbay.data_dir.path(), seed.api_key.as_bytes()), Vec::<std::path::PathBuf>::new());
}
