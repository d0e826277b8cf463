//! Credential assets, folder deletion and the row/vault consistency pass.

mod common;

use common::World;
use patchbay_core::{AuthRef, ConnectionQuery, ConnectionStatus, Secret, SecretSource};

#[tokio::test]
async fn a_connection_can_use_an_asset_visible_from_its_folder() {
    let world = World::new();
    let seed = world.fake.seed();
    world.core.create_folder("Shared/Finance").unwrap();
    let asset = world
        .core
        .create_asset("Shared", "Twilio token", Secret::new(seed.live.auth_token.clone()), None)
        .await
        .unwrap();
    assert_eq!((asset.folder.as_str(), asset.used_by, asset.rotatable), ("Shared", 0, false));

    let mut new = world.live("+15551230001");
    new.folder = "Shared/Finance".into();
    new.secret = Some(SecretSource::Asset("twilio TOKEN".into()));
    let connection = world.core.add_connection(new).await.unwrap();
    assert_eq!(connection.auth, AuthRef::Asset { name: "Twilio token".into(), folder: "Shared".into() });
    assert!(!connection.rotatable, "an asset's token is rotated from the asset");
    assert_eq!(world.vault_value(&format!("connection/{}", connection.id)), None, "no copy of the asset's value");

    let visible = world.core.list_assets(Some("Shared/Finance")).unwrap();
    let listed: Vec<_> = visible.iter().map(|a| (a.name.as_str(), a.used_by, a.rotatable)).collect();
    assert_eq!(listed, [("Twilio token", 1, true)], "used as a Twilio Auth Token: rotatable");
}

#[tokio::test]
async fn asset_problems_are_reported_on_the_auth_token_field() {
    let world = World::new();
    let mut new = world.live("+15551230001");
    new.secret = Some(SecretSource::Asset("nope".into()));
    let err = world.core.add_connection(new).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("asset_not_found", Some("auth_token")));

    world.core.create_asset("Shared", "not a token", Secret::new("hunter2"), None).await.unwrap();
    let mut new = world.live("+15551230001");
    new.secret = Some(SecretSource::Asset("not a token".into()));
    let err = world.core.add_connection(new).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("invalid_input", Some("auth_token")));
    assert!(!err.to_string().contains("hunter2"));
    assert!(world.fake.requests().is_empty());
}

#[tokio::test]
async fn assets_in_use_are_kept_unless_forced() {
    let world = World::new();
    let seed = world.fake.seed();
    let asset =
        world.core.create_asset("Shared", "token", Secret::new(seed.live.auth_token.clone()), None).await.unwrap();
    let mut new = world.live("+15551230001");
    new.secret = Some(SecretSource::Asset("token".into()));
    let connection = world.core.add_connection(new).await.unwrap();

    let err = world.core.delete_asset("Shared", "token", false).await.unwrap_err();
    assert_eq!(err.code(), "asset_in_use");
    assert!(err.to_string().contains("Shared/Twilio +15551230001"), "{err}");

    world.core.delete_asset("Shared", "token", true).await.unwrap();
    assert_eq!(world.vault_value(&format!("asset/{}", asset.id)), None);
    let orphan = world.core.connection(&connection.id).unwrap();
    assert_eq!(orphan.auth, AuthRef::MissingAsset);
    assert!(matches!(&orphan.status, ConnectionStatus::Failed { code, .. } if code == "asset_not_found"));
    assert_eq!(world.core.test_connection(&connection.id).await.unwrap_err().code(), "asset_not_found");
}

#[tokio::test]
async fn asset_names_are_unique_per_folder_and_values_are_required() {
    let world = World::new();
    world.core.create_asset("Shared", "token", Secret::new("a"), None).await.unwrap();
    assert_eq!(
        world.core.create_asset("Shared", "TOKEN", Secret::new("b"), None).await.unwrap_err().code(),
        "name_taken"
    );
    assert_eq!(
        world.core.create_asset("Shared", "empty", Secret::new(""), None).await.unwrap_err().code(),
        "invalid_input"
    );
    assert_eq!(
        world.core.create_asset("Nowhere", "x", Secret::new("a"), None).await.unwrap_err().code(),
        "folder_not_found"
    );
}

#[tokio::test]
async fn a_folder_with_contents_is_deleted_only_recursively_and_takes_its_secrets() {
    let world = World::new();
    let seed = world.fake.seed();
    world.core.create_folder("Shared/Finance").unwrap();
    world.core.create_folder("Shared/Finance/EMEA").unwrap();
    let asset = world
        .core
        .create_asset("Shared/Finance", "token", Secret::new(seed.live.auth_token.clone()), None)
        .await
        .unwrap();
    let mut new = world.live("+15551230001");
    new.folder = "Shared/Finance/EMEA".into();
    let connection = world.core.add_connection(new).await.unwrap();

    let err = world.core.delete_folder("Shared/Finance", false).await.unwrap_err();
    assert_eq!(err.code(), "folder_not_empty");
    assert!(err.to_string().contains("1 sub-folder, 1 connection and 1 credential asset"), "{err}");

    let removed = world.core.delete_folder("Shared/Finance", true).await.unwrap();
    assert_eq!((removed.folders, removed.connections, removed.assets), (1, 1, 1));
    assert_eq!(world.vault_value(&format!("connection/{}", connection.id)), None);
    assert_eq!(world.vault_value(&format!("asset/{}", asset.id)), None);
    assert_eq!(world.core.list_folders().unwrap().len(), 1, "only Shared is left");
    world.core.delete_folder("Shared", false).await.expect("an empty folder goes without --recursive");
}

#[tokio::test]
async fn start_up_finishes_what_a_crash_interrupted() {
    let world = World::new();
    let kept = world.core.add_connection(world.live("+15551230001")).await.unwrap();
    let half_deleted = world.core.add_connection(world.live("+15551230002")).await.unwrap();
    let half_added = world.core.create_asset("Shared", "token", Secret::new("x"), None).await.unwrap();

    // What a crash leaves: one delete journaled but not carried out, one add whose
    // secret was written but whose row never became active.
    let db = rusqlite::Connection::open(world.core.config().database_path()).unwrap();
    db.execute("UPDATE connections SET lifecycle = 'deleting' WHERE id = ?1", [&half_deleted.id]).unwrap();
    db.execute("UPDATE assets SET lifecycle = 'pending' WHERE id = ?1", [&half_added.id]).unwrap();
    assert!(world.vault_value(&format!("connection/{}", half_deleted.id)).is_some());

    let restarted = world.reopen();
    restarted.repair().await.unwrap();
    assert_eq!(world.vault_value(&format!("connection/{}", half_deleted.id)), None);
    assert_eq!(world.vault_value(&format!("asset/{}", half_added.id)), None);
    assert!(world.vault_value(&format!("connection/{}", kept.id)).is_some());
    let left: Vec<String> =
        restarted.list_connections(&ConnectionQuery::default()).unwrap().items.into_iter().map(|c| c.id).collect();
    assert_eq!(left, [kept.id]);
    assert!(restarted.list_assets(None).unwrap().is_empty());
}

#[tokio::test]
async fn repair_leaves_the_work_of_a_live_process_alone() {
    let world = World::new();
    let busy = world.core.create_asset("Shared", "token", Secret::new("x"), None).await.unwrap();
    // world.core is alive and, as far as the store can tell, in the middle of writing it.
    let owners = std::fs::read_dir(world.config.data_dir.join("owners")).unwrap();
    let live_owner: Vec<String> = owners
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".lock").map(str::to_owned))
        .collect();
    assert_eq!(live_owner.len(), 1);
    let db = rusqlite::Connection::open(world.core.config().database_path()).unwrap();
    db.execute("UPDATE assets SET lifecycle = 'pending', owner = ?2 WHERE id = ?1", [&busy.id, &live_owner[0]])
        .unwrap();

    let other = world.reopen();
    other.repair().await.unwrap();
    assert!(world.vault_value(&format!("asset/{}", busy.id)).is_some(), "a live owner's secret stays");
    let pending: i64 = db.query_row("SELECT count(*) FROM assets WHERE id = ?1", [&busy.id], |r| r.get(0)).unwrap();
    assert_eq!(pending, 1, "a live owner's row stays");

    // Once that process is gone, its abandoned work is finished.
    let World { core, .. } = world;
    drop(core);
    other.repair().await.unwrap();
    let left: i64 = db.query_row("SELECT count(*) FROM assets WHERE id = ?1", [&busy.id], |r| r.get(0)).unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn asset_values_are_capped() {
    let world = World::new();
    let largest = "x".repeat(patchbay_core::MAX_ASSET_BYTES);
    world.core.create_asset("Shared", "largest", Secret::new(largest.clone()), None).await.unwrap();
    let err = world.core.create_asset("Shared", "too large", Secret::new(largest + "x"), None).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("invalid_input", Some("value")));
    assert!(err.to_string().contains("64 KiB"), "{err}");
}

#[tokio::test]
async fn search_is_case_and_accent_insensitive_and_pages() {
    let world = World::new();
    world.core.create_folder("Shared/Finance").unwrap();
    for (folder, phone, name) in
        [("Shared", "+15551230001", "Télécom Alerts"), ("Shared/Finance", "+15551230002", "Invoices")]
    {
        let mut new = world.live(phone);
        new.folder = folder.into();
        new.name = Some(name.into());
        world.core.add_connection(new).await.unwrap();
    }
    let names = |query: ConnectionQuery| -> Vec<String> {
        world.core.list_connections(&query).unwrap().items.into_iter().map(|c| c.name).collect()
    };
    let search = |text: &str| ConnectionQuery { search: Some(text.into()), ..Default::default() };
    assert_eq!(names(search("TELECOM")), ["Télécom Alerts"]);
    assert_eq!(names(search("0002")), ["Invoices"]);
    assert_eq!(names(search("acme operations")).len(), 2, "the account's friendly name is searchable");
    assert_eq!(names(search("vo")), ["Invoices"], "short needles work too");
    assert_eq!(names(search("%")), Vec::<String>::new(), "LIKE wildcards are literal");
    assert_eq!(names(ConnectionQuery { folder: Some("Shared/Finance".into()), ..Default::default() }), ["Invoices"]);
    let page =
        world.core.list_connections(&ConnectionQuery { limit: Some(1), offset: 1, ..Default::default() }).unwrap();
    assert_eq!((page.total, page.items.len(), page.items[0].name.as_str()), (2, 1, "Télécom Alerts"));
}

#[tokio::test]
async fn search_sees_changes_made_by_another_process() {
    let world = World::new();
    let other = world.reopen();
    let search = ConnectionQuery { search: Some("15551230001".into()), ..Default::default() };
    assert_eq!(world.core.list_connections(&search).unwrap().total, 0);
    let added = other.add_connection(world.live("+15551230001")).await.unwrap();
    assert_eq!(world.core.list_connections(&search).unwrap().total, 1);
    other.delete_connection(&added.id).await.unwrap();
    assert_eq!(world.core.list_connections(&search).unwrap().total, 0);
}
