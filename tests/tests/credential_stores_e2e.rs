//! `patchbay store …`, `asset …` and the API's `/credential-stores` and `/assets` as real
//! processes, against a real OpenBao and the real Secret Service.

use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::harness::{Patchbay, Run, Token, files_containing, require_secret_service, run_command};
use patchbay_tests::openbao::OpenBao;
use patchbay_tests::serve::{Server, send};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[test]
fn stores_are_registered_checked_listed_and_removed_from_the_cli() {
    require_secret_service();
    let fake = FakeTwilio::start();
    let patchbay = Patchbay::new(&fake);
    let bao = OpenBao::start();
    bao.policy("patchbay", r#"path "secret/data/patchbay/*" { capabilities = ["create", "read", "update"] }"#);
    let token = bao.token(&["patchbay"]);

    let add = ["--json", "store", "add", "Company vault", "--address", &bao.address, "--token-stdin"];
    let added = patchbay.run_with_stdin(&add, &token).ok().json();
    assert_eq!((added["mount"].as_str(), added["auth"].as_str()), (Some("secret"), Some("token")));
    assert_eq!(patchbay.vault_secret(&format!("store/{}", added["id"].as_str().unwrap())), Some(token.clone()));

    let (role_id, secret_id) = bao.approle("robots", "patchbay");
    let approle = ["--json", "store", "add", "Robots", "--address", &bao.address, "--approle-role-id", &role_id];
    patchbay.run_with_stdin(&approle, &secret_id).ok();

    let listed = patchbay.run(&["store", "list"]).ok().stdout;
    assert!(listed.contains("Company vault") && listed.contains("approle"), "{listed}");
    let checked = patchbay.run(&["--json", "store", "test", "Robots"]).ok().json();
    assert!(checked["version"].is_string());
    for secret in [&token, &secret_id] {
        assert_eq!(files_containing(patchbay.data_dir.path(), secret.as_bytes()), Vec::<std::path::PathBuf>::new());
    }

    // A linked asset: a Twilio connection reads its token from the store.
    let live = fake.seed().live;
    bao.ok(&["kv", "put", "secret/patchbay/twilio", &format!("auth_token={}", live.auth_token)]);
    let link = ["--json", "asset", "link", "Twilio prod", "--folder", "Shared", "--store", "Company vault"];
    let linked = patchbay.run(&[&link[..], &["--path", "patchbay/twilio", "--key", "auth_token"]].concat()).ok().json();
    assert_eq!(linked["link"]["path"], "patchbay/twilio");
    let made =
        patchbay.add_twilio("Alerts", &live.phone_numbers[0], &live.sid, Token::Asset("Twilio prod"), false).ok();
    assert_eq!(made.json()["status"]["state"], "connected");
    let assets = patchbay.run(&["asset", "list"]).ok().stdout;
    assert!(assets.contains("Company vault: patchbay/twilio (auth_token)"), "{assets}");
    assert_eq!(
        files_containing(patchbay.data_dir.path(), live.auth_token.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(patchbay.vault_entries().iter().filter(|user| user.starts_with("asset/")).count(), 0);

    bao.ok(&["operator", "seal"]);
    let failed = patchbay.run(&["--json", "connection", "test", made.json()["id"].as_str().unwrap()]);
    assert_eq!(failed.code(), "store_sealed");
    let sealed = patchbay.run(&["--json", "store", "test", "Company vault"]);
    assert_eq!(sealed.code(), "store_sealed");
    assert!(!sealed.stderr.contains(&token));
    patchbay.run(&["store", "remove", "Robots"]).ok();
    assert_eq!(patchbay.run(&["--json", "store", "list"]).ok().json().as_array().unwrap().len(), 1);
    assert_eq!(
        patchbay.run(&["--json", "store", "remove", "Company vault"]).code(),
        "invalid_input",
        "an asset is linked"
    );
}

/// What Patchbay's token may do in these tests: its own assets, and read the admins'
/// Twilio secrets (README's policy, narrowed to the paths used).
const POLICY: &str = r#"
path "secret/data/patchbay/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/patchbay/*" { capabilities = ["delete"] }
path "secret/data/twilio/*" { capabilities = ["read"] }
"#;

#[test]
fn stores_and_assets_through_the_api_and_a_check_and_set_conflict_through_the_cli() {
    require_secret_service();
    let fake = FakeTwilio::start();
    let live = fake.seed().live;
    let mut patchbay = Patchbay::new(&fake);
    // The OpenBao below listens on this machine.
    let server = Server::start_allowing(&patchbay, "loopback");
    // The CLI's runs below log everything they do; their output is searched for secrets.
    patchbay.set_env("PATCHBAY_LOG", "debug");
    let bao = OpenBao::start();
    bao.policy("patchbay", POLICY);
    let (role_id, secret_id) = bao.approle("patchbay", "patchbay");
    let token = bao.token(&["patchbay"]);
    let mut answers = String::new();
    let mut call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = server.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, body) = send(request);
        answers.push_str(&body.to_string());
        (status, body)
    };

    // Register: by AppRole, and by a token that is revoked afterwards.
    let by_approle = json!({ "name": "Company vault", "address": bao.address,
                             "approle": { "roleId": role_id, "secretId": secret_id } });
    let (status, added) = call(reqwest::Method::POST, "/credential-stores", Some(by_approle));
    assert_eq!((status, added["auth"].as_str()), (StatusCode::OK, Some("approle")), "{added}");
    let by_token = json!({ "name": "Ops vault", "address": bao.address, "token": token });
    assert_eq!(call(reqwest::Method::POST, "/credential-stores", Some(by_token)).0, StatusCode::OK);
    bao.ok(&["token", "revoke", &token]);
    let (status, revoked) = call(reqwest::Method::POST, "/credential-stores/Ops%20vault/test", None);
    assert_eq!((status, revoked["code"].as_str()), (StatusCode::BAD_REQUEST, Some("store_auth_failed")));
    assert_eq!(call(reqwest::Method::DELETE, "/credential-stores/Ops%20vault", None).0, StatusCode::OK);
    let (_, stores) = call(reqwest::Method::GET, "/credential-stores", None);
    assert_eq!(stores.as_array().unwrap().len(), 1);

    // A managed asset and a linked one; a missing path is refused with its code.
    let managed =
        json!({ "folder": "Shared", "name": "Managed token", "value": live.auth_token, "store": "Company vault" });
    let (status, managed) = call(reqwest::Method::POST, "/assets", Some(managed));
    assert_eq!((status, managed["store"].as_str()), (StatusCode::OK, Some("Company vault")), "{managed}");
    let managed_path = format!("secret/patchbay/{}", managed["id"].as_str().unwrap());
    assert_eq!(bao.ok(&["kv", "get", "-field=value", &managed_path]), live.auth_token);
    bao.ok(&["kv", "put", "secret/twilio/prod", &format!("auth_token={}", live.auth_token)]);
    let link = |path: &str| {
        json!({ "folder": "Shared", "name": "Linked token", "store": "Company vault",
                "link": { "path": path, "key": "auth_token" } })
    };
    let (status, missing) = call(reqwest::Method::POST, "/assets", Some(link("twilio/staging")));
    assert_eq!((status, missing["code"].as_str()), (StatusCode::BAD_REQUEST, Some("store_secret_missing")));
    assert_eq!(call(reqwest::Method::POST, "/assets", Some(link("twilio/prod"))).0, StatusCode::OK);
    let (_, assets) = call(reqwest::Method::GET, "/assets?folder=Shared", None);
    assert_eq!(assets.as_array().unwrap().len(), 2);

    // Every CLI run's output (with its debug log) is kept, to be searched for secrets.
    let printed = std::cell::RefCell::new(String::new());
    let keep = |run: Run| {
        printed.borrow_mut().push_str(&format!("{}{}", run.stdout, run.stderr));
        run
    };
    let cli = |args: &[&str]| keep(patchbay.run(args));

    // Connections through both.
    let instance = |name: &str, asset: &str| {
        json!({ "element": { "key": "twiliov2" }, "name": name, "folder": "Shared",
                "configuration": { "username": live.sid, "password": { "asset": asset },
                                   "phone_number": live.phone_numbers[0] } })
    };
    // Assets made through the API go nowhere until their owner says where.
    let (status, refused) = call(reqwest::Method::POST, "/instances", Some(instance("Managed", "Managed token")));
    assert_eq!((status, refused["code"].as_str()), (StatusCode::FORBIDDEN, Some("asset_destination_refused")));
    for asset in ["Managed token", "Linked token"] {
        cli(&["asset", "allow", asset, "--folder", "Shared", "--to", "twilio"]).ok();
    }
    let (status, by_managed) = call(reqwest::Method::POST, "/instances", Some(instance("Managed", "Managed token")));
    assert_eq!(status, StatusCode::OK, "{by_managed}");
    let (status, by_linked) = call(reqwest::Method::POST, "/instances", Some(instance("Linked", "Linked token")));
    assert_eq!(status, StatusCode::OK, "{by_linked}");

    // A rotation done in OpenBao reaches the connection through the linked asset.
    let linked_id = by_linked["id"].as_str().unwrap();
    bao.ok(&["kv", "put", "secret/twilio/prod", &format!("auth_token={}", "0".repeat(32))]);
    assert_eq!(cli(&["--json", "connection", "test", linked_id]).code(), "twilio_auth_failed");
    bao.ok(&["kv", "put", "secret/twilio/prod", &format!("auth_token={}", live.auth_token)]);
    assert_eq!(cli(&["--json", "connection", "test", linked_id]).ok().json()["status"]["state"], "connected");

    // The linked secret holds the same token: a rotation would change it under the
    // admins, so it is refused unless asked with --write-linked.
    let rotate = ["--json", "credential", "rotate", "--asset", "Managed token", "--folder", "Shared", "--yes"];
    let refused = cli(&rotate);
    assert_eq!(refused.code(), "invalid_input");
    assert!(refused.error()["message"].as_str().unwrap().contains("--write-linked"), "{}", refused.stderr);
    bao.ok(&["kv", "put", "secret/twilio/prod", &format!("auth_token={}", "0".repeat(32))]);

    // Someone writes the managed secret while a rotation runs: nothing is promoted.
    let mut stopped = patchbay.command(&rotate);
    stopped.env("PATCHBAY_ROTATION_STOP_AFTER", "2");
    keep(run_command(stopped, ""));
    bao.ok(&["kv", "put", &managed_path, &format!("value={}", "0".repeat(32))]);
    let conflict = cli(&["--json", "credential", "rotate", "--resume"]);
    assert_eq!(conflict.code(), "store_version_conflict", "{}", conflict.stderr);
    assert_eq!(fake.primary_token(&live.sid).as_deref(), Some(live.auth_token.as_str()), "nothing promoted");
    let cancelled = cli(&["--json", "credential", "rotate", "--cancel"]).ok().json();
    assert_eq!(cancelled[0]["step"], "cancelled");

    // Sealed: the API says so, with its code.
    bao.ok(&["operator", "seal"]);
    let (status, sealed) = call(reqwest::Method::POST, "/instances", Some(instance("Sealed", "Managed token")));
    assert_eq!((status, sealed["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("store_sealed")));

    // No secret value anywhere: data folder, API answers, CLI output and logs.
    drop(server);
    for secret in [&live.auth_token, &secret_id, &token] {
        assert!(!answers.contains(secret.as_str()), "an API answer holds a secret");
        assert!(!printed.borrow().contains(secret.as_str()), "the CLI printed or logged a secret");
        assert_eq!(files_containing(patchbay.data_dir.path(), secret.as_bytes()), Vec::<std::path::PathBuf>::new());
    }
}
