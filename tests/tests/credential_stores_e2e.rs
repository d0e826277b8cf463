//! `patchbay store …` as a real process, against a real OpenBao and the real Secret Service.

use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::harness::{Patchbay, Token, files_containing, require_secret_service};
use patchbay_tests::openbao::OpenBao;

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
