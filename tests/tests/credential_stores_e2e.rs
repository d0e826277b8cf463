//! `patchbay store …` as a real process, against a real OpenBao and the real Secret Service.

use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::harness::{Patchbay, files_containing, require_secret_service};
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

    bao.ok(&["operator", "seal"]);
    let sealed = patchbay.run(&["--json", "store", "test", "Company vault"]);
    assert_eq!(sealed.code(), "store_sealed");
    assert!(!sealed.stderr.contains(&token));
    patchbay.run(&["store", "remove", "Robots"]).ok();
    assert_eq!(patchbay.run(&["--json", "store", "list"]).ok().json().as_array().unwrap().len(), 1);
}
