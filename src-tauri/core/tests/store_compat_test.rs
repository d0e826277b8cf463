//! A data folder written by an earlier release opens in this one without losing a row:
//! every folder, connection and asset reads back as that release showed it.

mod common;

use common::TwilioFields;
use patchbay_core::{AuthRef, Config, ConnectionQuery, ConnectionStatus, Patchbay, Vault};

/// Opens a data folder whose database is made from `dump` (SQL), as a process of this release would.
fn open_release_data(dump: &str) -> (Patchbay, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Some(dir.path().to_path_buf())).unwrap();
    rusqlite::Connection::open(config.database_path()).unwrap().execute_batch(dump).unwrap();
    let vault =
        Vault::with_store("patchbay-compat-tests", keyring_core::mock::Store::new().unwrap(), config.vault_timeout);
    (Patchbay::open_with_vault(config, vault).unwrap(), dir)
}

#[test]
fn a_store_written_by_release_0_1_reads_back_whole() {
    let (core, _dir) = open_release_data(include_str!("fixtures/store-0.1.sql"));

    let folders: Vec<String> = core.list_folders().unwrap().into_iter().map(|folder| folder.path).collect();
    assert_eq!(folders, ["Acme Café", "Shared", "Shared/Finance"]);

    let page = core.list_connections(&ConnectionQuery::default()).unwrap();
    assert_eq!(page.total, 5);
    // Every connection of that release was Twilio with an Auth Token, and now says so.
    assert!(page.items.iter().all(|c| c.connector == "twilio" && c.auth_method == "auth_token"));
    let by_name = |name: &str| page.items.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{name} is kept"));

    let alerts = by_name("Alerts");
    assert_eq!(alerts.folder, "Shared");
    assert_eq!(alerts.phone(), Some("+15551230001"));
    assert_eq!(alerts.auth, AuthRef::Own);
    assert_eq!(alerts.status, ConnectionStatus::Connected);
    assert_eq!(alerts.account_name(), Some("Acme Operations"));
    assert!(!alerts.test_credentials());

    let account_level = by_name("Twilio AC1285801bcf73034f7607338d9d48d66c");
    assert_eq!(account_level.folder, "Acme Café");
    assert_eq!(account_level.phone(), None);

    let sandbox = by_name("Sandbox");
    assert!(sandbox.test_credentials());
    assert_eq!(sandbox.folder, "Shared/Finance");

    let through_asset = by_name("Invoices SMS");
    assert_eq!(through_asset.auth, AuthRef::Asset { name: "Twilio live token".into(), folder: "Shared".into() });

    let orphaned = by_name("Legacy");
    assert_eq!(orphaned.auth, AuthRef::MissingAsset);
    assert!(matches!(&orphaned.status, ConnectionStatus::Failed { code, .. } if code == "asset_not_found"));

    let assets = core.list_assets(None).unwrap();
    assert_eq!(assets.len(), 1);
    assert_eq!((assets[0].name.as_str(), assets[0].used_by), ("Twilio live token", 1));
    // It may go on to where its connection sends it today, and nowhere else.
    let twilio = patchbay_core::Destination { connector: "twilio".into(), origin: None };
    assert_eq!(assets[0].destinations, [twilio]);

    // The search index is rebuilt from the stored texts, accents folded.
    let search = |text: &str| {
        core.list_connections(&ConnectionQuery { search: Some(text.into()), ..Default::default() }).unwrap().total
    };
    assert_eq!(search("acme operations"), 4);
    assert_eq!(search("SANDBOX"), 1);
}
