//! A vault that does not answer (a locked keyring waiting on an unlock prompt nobody
//! sees) costs a bounded wait and a clear `vault_locked`, never a frozen process, and
//! leaves nothing half-saved behind.

mod common;

use std::time::Duration;

use common::World;
use patchbay_core::{Asset, Error, Secret};
use patchbay_tests::locked_vault::PromptingStore;

/// Fails the test instead of hanging it when a call does not come back.
async fn bounded<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), call).await.expect("the call came back")
}

/// Creates an asset once the vault answers again: until the call that waited on the
/// prompt has returned, it still says vault_locked.
async fn create_once_unlocked(world: &World, name: &str, value: &str) -> Asset {
    bounded(async {
        loop {
            match world.core.create_asset("Shared", name, Secret::new(value), None).await {
                Err(err) if err.code() == "vault_locked" => tokio::time::sleep(Duration::from_millis(20)).await,
                other => return other,
            }
        }
    })
    .await
    .expect("the vault works once unlocked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_vault_answers_vault_locked_and_loses_nothing() {
    let (store, prompt) = PromptingStore::with_prompt();
    let world = World::with_vault_store(store, |config| config.vault_timeout = Duration::from_millis(300));
    prompt.lock();

    let err: Error = bounded(world.core.create_asset("Shared", "token", Secret::new("first"), None)).await.unwrap_err();
    assert_eq!(err.code(), "vault_locked");
    assert!(err.to_string().contains("unlock your keyring"), "{err}");
    // While that call still waits, the store answers and the vault answers at once.
    assert!(world.core.list_assets(None).unwrap().is_empty(), "a half-saved asset is never listed");
    let again = bounded(world.core.create_asset("Shared", "other", Secret::new("second"), None)).await.unwrap_err();
    assert_eq!(again.code(), "vault_locked");

    prompt.unlock();
    let saved = create_once_unlocked(&world, "after unlock", "third").await;
    assert_eq!(world.vault_value(&format!("asset/{}", saved.id)).as_deref(), Some("third"));

    // The first attempts left nothing: no row, and the write that landed after the
    // unlock was undone.
    let db = rusqlite::Connection::open(world.config.database_path()).unwrap();
    let rows: i64 = db.query_row("SELECT count(*) FROM assets", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 1, "only the asset saved after the unlock");
    let vault_users: Vec<String> = {
        let mut statement = db.prepare("SELECT 'asset/' || id FROM assets").unwrap();
        statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(vault_users, [format!("asset/{}", saved.id)]);
    let entries = world.vault_store.search(&std::collections::HashMap::from([("service", common::VAULT_SERVICE)]));
    // The in-memory store keeps deleted entries as empty shells: count those with a value.
    let stored = entries.expect("the test vault can be searched").iter().filter(|e| e.get_password().is_ok()).count();
    assert_eq!(stored, 1, "no secret without its row");
    // And the name the first attempt wanted is free.
    bounded(world.core.create_asset("Shared", "token", Secret::new("again"), None)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_cancelled_while_the_vault_waits_leaves_nothing() {
    let (store, prompt) = PromptingStore::with_prompt();
    let world = World::with_vault_store(store, |config| config.vault_timeout = Duration::from_secs(10));
    prompt.lock();
    // The window's Cancel drops the call while the vault write waits on the prompt.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        world.core.create_asset("Shared", "token", Secret::new("x"), None),
    )
    .await;
    assert!(cancelled.is_err(), "still waiting when cancelled");
    let db = rusqlite::Connection::open(world.config.database_path()).unwrap();
    let rows: i64 = db.query_row("SELECT count(*) FROM assets", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 0, "the cancelled save's row is gone at once");

    prompt.unlock();
    // The write lands after the unlock and is undone by the vault; then the name is free.
    let saved = create_once_unlocked(&world, "token", "y").await;
    bounded(async {
        while world.vault_value(&format!("asset/{}", saved.id)).is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let entries = world.vault_store.search(&std::collections::HashMap::from([("service", common::VAULT_SERVICE)]));
    let stored: Vec<String> = entries
        .unwrap()
        .iter()
        .filter(|entry| entry.get_password().is_ok())
        .filter_map(|entry| entry.get_specifiers().map(|(_, user)| user))
        .collect();
    assert_eq!(stored, [format!("asset/{}", saved.id)], "the cancelled write left no secret");
}
