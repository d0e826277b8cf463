//! Every write has a journal, as real processes on one data folder see it: a store
//! removal cut short by a keyring that never answers is hidden and finished later, and
//! processes asking a fresh data folder for the API's credentials together all get the
//! one pair that works.

use std::collections::BTreeSet;
use std::process::Stdio;

use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::harness::{Patchbay, Run, require_secret_service, run_command};
use patchbay_tests::locked_vault::SilentBus;
use patchbay_tests::openbao::OpenBao;
use patchbay_tests::serve::Server;
use reqwest::StatusCode;
use serde_json::json;

#[test]
fn a_store_removal_cut_short_by_a_silent_keyring_is_hidden_and_finished_by_the_next_process() {
    require_secret_service();
    let fake = FakeTwilio::start();
    let mut patchbay = Patchbay::new(&fake);
    patchbay.set_env("PATCHBAY_VAULT_TIMEOUT_MS", "300");
    let bao = OpenBao::start();
    let add = ["--json", "store", "add", "Company vault", "--address", &bao.address, "--token-stdin"];
    let added = patchbay.run_with_stdin(&add, &bao.root_token).ok().json();
    let kept = format!("store/{}", added["id"].as_str().unwrap());

    // The keyring never answers (a prompt nobody sees): each run gives up with vault_locked.
    let silent = SilentBus::start();
    let stalled = |args: &[&str]| -> Run {
        let mut command = patchbay.command(args);
        command.env("DBUS_SESSION_BUS_ADDRESS", &silent.address);
        run_command(command, "")
    };
    assert_eq!(stalled(&["--json", "store", "remove", "Company vault"]).code(), "vault_locked");
    assert_eq!(stalled(&["--json", "store", "list"]).ok().json(), json!([]), "a store being removed is hidden");
    assert_eq!(
        stalled(&["--json", "store", "remove", "Company vault"]).code(),
        "vault_locked",
        "a retry takes the removal up again (never not_found)"
    );
    assert!(patchbay.vault_entries().contains(&kept), "nothing was deleted yet");

    // The keyring answers again: the retry (whose repair finishes the removal) is done.
    patchbay.run(&["--json", "store", "remove", "Company vault"]).ok();
    assert!(!patchbay.vault_entries().contains(&kept), "the store's token left the keyring");
    assert_eq!(patchbay.run(&["--json", "store", "remove", "Company vault"]).code(), "not_found", "once");
    assert_eq!(patchbay.run(&["--json", "store", "list"]).ok().json(), json!([]));
    patchbay.run_with_stdin(&add, &bao.root_token).ok();
}

#[test]
fn the_first_api_credentials_of_a_data_folder_are_made_once_for_everyone() {
    require_secret_service();
    let fake = FakeTwilio::start();
    let patchbay = Patchbay::new(&fake);
    let asking: Vec<_> = (0..10)
        .map(|_| {
            let mut command = patchbay.command(&["--json", "api", "credentials"]);
            command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            command.spawn().expect("patchbay starts")
        })
        .collect();
    let pairs: BTreeSet<(String, String)> = asking
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("patchbay finishes");
            let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            assert!(output.status.success(), "api credentials failed: {stdout}{stderr}");
            let pair: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
            (pair["user"].as_str().unwrap().to_owned(), pair["organization"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(pairs.len(), 1, "every process printed the same pair: {pairs:?}");

    // serve accepts the pair a later `api credentials` prints, which is that one.
    let server = Server::start(&patchbay);
    let (user, organization) = pairs.first().unwrap();
    assert_eq!(server.auth, format!("User {user}, Organization {organization}"));
    assert_eq!(server.get("/instances").0, StatusCode::OK);
}
