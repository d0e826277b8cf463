//! Registering credential stores against a real OpenBao (`bao server -dev`): a token and
//! an AppRole sign in, and each way a store can be wrong has its own code: sealed, a bad
//! token, a mount that is missing or KV v1, an address nothing answers.

mod common;

use std::time::Duration;

use common::World;
use patchbay_core::credential_stores::{NewStore, StoreCredentials};
use patchbay_core::rotation::{RotationStep, RotationSubject};
use patchbay_core::{Secret, SecretSource};
use patchbay_tests::dropping_proxy::DroppingProxy;
use patchbay_tests::locked_vault::PromptingStore;
use patchbay_tests::openbao::OpenBao;

fn store(name: &str, bao: &OpenBao, mount: Option<&str>, credentials: StoreCredentials) -> NewStore {
    NewStore {
        name: name.into(),
        address: bao.address.clone(),
        mount: mount.map(str::to_owned),
        namespace: None,
        credentials,
    }
}

/// What Patchbay needs under the mount for the assets it manages (README's policy); a
/// token with any capability under a mount may read the mount's type
/// (sys/internal/ui/mounts).
const READ_SECRET_MOUNT: &str = r#"
path "secret/data/patchbay/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/patchbay/*" { capabilities = ["delete"] }
"#;

#[tokio::test]
async fn a_token_and_an_approle_sign_in_and_their_credentials_stay_in_the_os_vault() {
    let world = World::new();
    let bao = OpenBao::start();
    bao.policy("patchbay", READ_SECRET_MOUNT);
    let token = bao.token(&["patchbay"]);
    let added = world
        .core
        .add_store(store("Company vault", &bao, None, StoreCredentials::Token(Secret::new(token.clone()))))
        .await
        .unwrap();
    assert_eq!((added.mount.as_str(), added.kind.as_str()), ("secret", "vault"));
    assert_eq!(world.vault_value(&format!("store/{}", added.id)), Some(token.clone()));
    let checked = world.core.test_store("company VAULT").await.unwrap();
    assert!(checked.policies.contains(&"patchbay".to_owned()), "{:?}", checked.policies);

    let (role_id, secret_id) = bao.approle("robots", "patchbay");
    let credentials = StoreCredentials::AppRole { role_id, secret_id: Secret::new(secret_id.clone()) };
    let approle = world.core.add_store(store("By AppRole", &bao, Some("secret"), credentials)).await.unwrap();
    assert_eq!(world.vault_value(&format!("store/{}", approle.id)), Some(secret_id));
    world.core.test_store("By AppRole").await.unwrap();

    let names: Vec<String> = world.core.list_stores().unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["By AppRole", "Company vault"]);
    let db = std::fs::read(world.config.database_path()).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()), "no token in the database");

    let again = store("company vault", &bao, None, StoreCredentials::Token(Secret::new(token)));
    assert_eq!(world.core.add_store(again).await.unwrap_err().code(), "name_taken");
    world.core.remove_store("By AppRole").await.unwrap();
    assert_eq!(world.vault_value(&format!("store/{}", approle.id)), None);
}

#[tokio::test]
async fn each_way_a_store_is_wrong_has_its_own_code_and_nothing_is_kept() {
    let world = World::new();
    let bao = OpenBao::start();
    let root = || StoreCredentials::Token(Secret::new(bao.root_token.clone()));

    let err = world.core.add_store(store("a", &bao, None, StoreCredentials::Token(Secret::new("not-a-token")))).await;
    let err = err.unwrap_err();
    assert_eq!((err.code(), err.field()), ("store_auth_failed", Some("credentials")));
    assert!(err.to_string().contains("permission denied") && !err.to_string().contains("not-a-token"), "{err}");

    let err = world.core.add_store(store("b", &bao, Some("nowhere"), root())).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("store_mount_unavailable", Some("mount")));

    bao.ok(&["secrets", "enable", "-path=kv1", "-version=1", "kv"]);
    let err = world.core.add_store(store("c", &bao, Some("kv1"), root())).await.unwrap_err();
    assert_eq!(err.code(), "store_not_kv2");
    assert!(err.to_string().contains("KV version 1"), "{err}");

    // A token without the policy to see the mount.
    let weak = bao.token(&["default"]);
    let err =
        world.core.add_store(store("d", &bao, None, StoreCredentials::Token(Secret::new(weak)))).await.unwrap_err();
    assert_eq!(err.code(), "store_mount_unavailable");
    assert!(err.to_string().contains("grants nothing under 'secret/'"), "the denied mount is named: {err}");

    let (role_id, _) = bao.approle("robots", "default");
    let wrong = StoreCredentials::AppRole { role_id, secret_id: Secret::new("00000000-0000-0000-0000-000000000000") };
    assert_eq!(world.core.add_store(store("e", &bao, None, wrong)).await.unwrap_err().code(), "store_auth_failed");

    let mut nowhere = store("f", &bao, None, root());
    nowhere.address = patchbay_tests::harness::NOWHERE.into();
    assert_eq!(world.core.add_store(nowhere).await.unwrap_err().code(), "store_unreachable");
    let mut remote = store("g", &bao, None, root());
    remote.address = "http://vault.example.com:8200".into();
    assert_eq!(world.core.add_store(remote).await.unwrap_err().field(), Some("address"), "plain http only on loopback");
    // Tests run with http_loopback_only: refused before any connection is made.
    let mut public = store("g", &bao, None, root());
    public.address = "https://vault.example.com:8200".into();
    let err = world.core.add_store(public).await.unwrap_err();
    assert!(err.to_string().contains("only call this machine"), "{err}");

    bao.ok(&["operator", "seal"]);
    let err = world.core.add_store(store("h", &bao, None, root())).await.unwrap_err();
    assert_eq!(err.code(), "store_sealed");
    assert!(world.core.list_stores().unwrap().is_empty());
}

#[tokio::test]
async fn a_store_that_fails_later_says_so_when_tested() {
    let world = World::new();
    let bao = OpenBao::start();
    let token = bao.token(&["root"]);
    let credentials = StoreCredentials::Token(Secret::new(token.clone()));
    world.core.add_store(store("Vault", &bao, None, credentials)).await.unwrap();
    bao.ok(&["kv", "put", "secret/twilio/prod", "auth_token=abc"]);
    bao.ok(&["token", "revoke", &token]);
    assert_eq!(world.core.test_store("Vault").await.unwrap_err().code(), "store_auth_failed");
    // A secret read (no lookup first) tells a dead token from a policy that denies.
    let read = world.core.link_asset("Shared", "Linked", "Vault", "twilio/prod", "auth_token").await;
    assert_eq!(read.unwrap_err().code(), "store_auth_failed");
    bao.ok(&["operator", "seal"]);
    assert_eq!(world.core.test_store("Vault").await.unwrap_err().code(), "store_sealed");
    assert_eq!(world.core.test_store("Other").await.unwrap_err().code(), "not_found");
}

#[tokio::test]
async fn a_linked_asset_is_read_from_the_store_each_time_so_a_rotation_there_reaches_connections() {
    let world = World::new();
    let seed = world.fake.seed();
    let bao = OpenBao::start();
    bao.policy("twilio-read", r#"path "secret/data/twilio/*" { capabilities = ["read"] }"#);
    let token = bao.token(&["twilio-read"]);
    bao.ok(&["kv", "put", "secret/twilio/prod", &format!("auth_token={}", seed.live.auth_token), "owner=ops"]);
    let credentials = StoreCredentials::Token(Secret::new(token));
    world.core.add_store(store("Company vault", &bao, None, credentials)).await.unwrap();

    let asset =
        world.core.link_asset("Shared", "Twilio prod", "Company vault", "twilio/prod", "auth_token").await.unwrap();
    let link = asset.link.clone().expect("linked");
    assert_eq!(
        (asset.store.as_deref(), link.path.as_str(), link.key.as_str()),
        (Some("Company vault"), "twilio/prod", "auth_token")
    );
    assert_eq!(world.vault_value(&format!("asset/{}", asset.id)), None, "no copy in the OS vault");

    let mut new = world.live("+15551230001");
    new.secret = Some(SecretSource::Asset("Twilio prod".into()));
    let connection = world.core.add_connection(new).await.unwrap();
    assert_eq!(connection.status, patchbay_core::ConnectionStatus::Connected);

    // The admins change the secret in the store: the next use reads the new value.
    bao.ok(&["kv", "put", "secret/twilio/prod", &format!("auth_token={}", "0".repeat(32))]);
    let err = world.core.test_connection(&connection.id).await.unwrap_err();
    assert_eq!(err.code(), "twilio_auth_failed");
    bao.ok(&["kv", "put", "secret/twilio/prod", &format!("auth_token={}", seed.live.auth_token)]);
    assert_eq!(
        world.core.test_connection(&connection.id).await.unwrap().status,
        patchbay_core::ConnectionStatus::Connected
    );

    // Patchbay does not rotate what the store's admins own.
    let subject = RotationSubject::Asset { folder: "Shared".into(), name: "Twilio prod".into(), write_linked: false };
    let err = world.core.plan_rotation(&subject).await.unwrap_err();
    assert!(err.to_string().contains("rotate it there"), "{err}");
    assert!(!world.core.list_assets(Some("Shared")).unwrap()[0].rotatable);

    // Sealed: the connection shows the store's reason, and no value is shown anywhere.
    bao.ok(&["operator", "seal"]);
    let err = world.core.test_connection(&connection.id).await.unwrap_err();
    assert_eq!(err.code(), "store_sealed");
    let failed = world.core.connection(&connection.id).unwrap();
    assert!(
        matches!(failed.status, patchbay_core::ConnectionStatus::Failed { ref code, .. } if code == "store_sealed")
    );
    assert_eq!(world.core.remove_store("Company vault").await.unwrap_err().code(), "invalid_input", "still linked");

    // The store comes back: so does the connection, with nothing to do in Patchbay.
    bao.unseal();
    assert_eq!(
        world.core.test_connection(&connection.id).await.unwrap().status,
        patchbay_core::ConnectionStatus::Connected
    );

    // A value that is no Twilio Auth Token is refused as such, without showing it.
    bao.ok(&["kv", "put", "secret/twilio/prod", "auth_token=not-a-token-value"]);
    let mut new = world.live("+15551230002");
    new.secret = Some(SecretSource::Asset("Twilio prod".into()));
    let err = world.core.add_connection(new).await.unwrap_err();
    assert_eq!(err.field(), Some("auth_token"), "{err}");
    assert!(err.to_string().contains("credential asset 'Twilio prod'"), "{err}");
    assert!(!err.to_string().contains("not-a-token-value"), "the value is never shown: {err}");
}

#[tokio::test]
async fn a_store_in_a_namespace_is_signed_in_and_read_there() {
    let world = World::new();
    let seed = world.fake.seed();
    let bao = OpenBao::start();
    bao.ok(&["namespace", "create", "team-a"]);
    bao.ok(&["secrets", "enable", "-ns=team-a", "-path=secret", "-version=2", "kv"]);
    bao.ok(&["kv", "put", "-ns=team-a", "secret/twilio/prod", &format!("auth_token={}", seed.live.auth_token)]);
    let mut in_namespace = store("Team A", &bao, None, StoreCredentials::Token(Secret::new(bao.root_token.clone())));
    in_namespace.namespace = Some("team-a/".into());
    let added = world.core.add_store(in_namespace).await.unwrap();
    assert_eq!(added.namespace.as_deref(), Some("team-a"));
    world.core.link_asset("Shared", "Twilio prod", "Team A", "twilio/prod", "auth_token").await.unwrap();
    let mut new = world.live("+15551230001");
    new.secret = Some(SecretSource::Asset("Twilio prod".into()));
    assert_eq!(world.core.add_connection(new).await.unwrap().status, patchbay_core::ConnectionStatus::Connected);

    // The same path outside the namespace does not exist.
    let root = StoreCredentials::Token(Secret::new(bao.root_token.clone()));
    world.core.add_store(store("Root", &bao, None, root)).await.unwrap();
    let err = world.core.link_asset("Shared", "Other", "Root", "twilio/prod", "auth_token").await.unwrap_err();
    assert_eq!(err.code(), "store_secret_missing");
}

#[tokio::test]
async fn a_store_that_does_not_answer_times_out_like_any_service() {
    let world = World::with(|config| {
        config.twilio.request_timeout = std::time::Duration::from_millis(300);
        config.twilio.max_retries = 0;
    });
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            open.push(connection);
        }
    });
    let new = NewStore {
        name: "Slow".into(),
        address,
        mount: None,
        namespace: None,
        credentials: StoreCredentials::Token(Secret::new("a-token")),
    };
    let err = world.core.add_store(new).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("store_unreachable", Some("address")));
    assert!(err.to_string().contains("no answer in time"), "{err}");
    assert!(world.core.list_stores().unwrap().is_empty());
    held.abort();
}

#[tokio::test]
async fn links_to_what_the_store_does_not_have_or_allow_are_refused_with_their_own_codes() {
    let world = World::new();
    let bao = OpenBao::start();
    bao.policy("twilio-read", r#"path "secret/data/twilio/*" { capabilities = ["read"] }"#);
    bao.ok(&["kv", "put", "secret/twilio/prod", "auth_token=abc", "count=1"]);
    bao.ok(&["kv", "put", "secret/hr/payroll", "password=x"]);
    let token = bao.token(&["twilio-read"]);
    world.core.add_store(store("Vault", &bao, None, StoreCredentials::Token(Secret::new(token)))).await.unwrap();
    let link = |path: &'static str, key: &'static str| world.core.link_asset("Shared", "Linked", "Vault", path, key);

    let err = link("twilio/staging", "auth_token").await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("store_secret_missing", Some("path")));
    let err = link("twilio/prod", "token").await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("store_key_missing", Some("key")));
    assert!(
        err.to_string().contains("auth_token, count") && !err.to_string().contains("abc"),
        "keys, never values: {err}"
    );
    let err = link("hr/payroll", "password").await.unwrap_err();
    assert_eq!(err.code(), "store_denied");
    assert!(err.to_string().contains("secret/data/hr/payroll"), "the denied path is named: {err}");
    assert_eq!(link("../sys", "x").await.unwrap_err().field(), Some("path"));
    assert_eq!(
        world.core.link_asset("Shared", "Linked", "Nope", "twilio/prod", "auth_token").await.unwrap_err().code(),
        "not_found"
    );
    assert!(world.core.list_assets(None).unwrap().is_empty());
}

#[tokio::test]
async fn a_managed_asset_lives_in_the_store_and_its_rotation_writes_a_new_version_with_check_and_set() {
    let world = World::new();
    let seed = world.fake.seed();
    let bao = OpenBao::start();
    bao.policy("patchbay", READ_SECRET_MOUNT);
    let credentials = StoreCredentials::Token(Secret::new(bao.token(&["patchbay"])));
    world.core.add_store(store("Company vault", &bao, None, credentials)).await.unwrap();

    // The folder's default store: a new asset goes there unless told otherwise.
    world.core.create_folder("Shared/Team").unwrap();
    let chosen = world.core.set_folder_store("Shared", Some("company vault")).unwrap();
    assert_eq!((chosen.store.as_str(), chosen.chosen_in.as_deref()), ("Company vault", Some("Shared")));
    let inherited = world.core.folder_store("Shared/Team").unwrap();
    assert_eq!((inherited.store.as_str(), inherited.chosen_in.as_deref()), ("Company vault", Some("Shared")));
    let token = Secret::new(seed.live.auth_token.clone());
    let asset = world.core.create_asset("Shared/Team", "Twilio prod", token, None).await.unwrap();
    assert_eq!((asset.store.as_deref(), asset.link.is_none()), (Some("Company vault"), true));
    let path = format!("secret/patchbay/{}", asset.id);
    assert_eq!(bao.ok(&["kv", "get", "-field=value", &path]), seed.live.auth_token);
    assert_eq!(world.vault_value(&format!("asset/{}", asset.id)), None, "no copy in the OS vault");
    let local = world.core.create_asset("Shared/Team", "Local", Secret::new("x"), Some("os")).await.unwrap();
    assert_eq!(local.store, None);
    assert_eq!(world.vault_value(&format!("asset/{}", local.id)).as_deref(), Some("x"));
    assert_eq!(world.core.remove_store("Company vault").await.unwrap_err().code(), "invalid_input", "in use");

    let mut new = world.live("+15551230001");
    new.folder = "Shared/Team".into();
    new.secret = Some(SecretSource::Asset("Twilio prod".into()));
    let connection = world.core.add_connection(new).await.unwrap();
    assert_eq!(connection.status, patchbay_core::ConnectionStatus::Connected);
    let listed = world.core.list_assets(Some("Shared/Team")).unwrap();
    assert!(listed.iter().any(|a| a.name == "Twilio prod" && a.rotatable), "managed: Patchbay's to rotate");

    // Someone writes the secret while a rotation runs: nothing is promoted at Twilio,
    // the other version stays, and the rotation can be cancelled.
    let subject =
        RotationSubject::Asset { folder: "Shared/Team".into(), name: "Twilio prod".into(), write_linked: false };
    let rotation = world.core.start_rotation(&subject).await.unwrap();
    bao.ok(&["kv", "put", &path, &format!("value={}", "0".repeat(32))]);
    let err = world.core.run_rotation(&rotation).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("store_version_conflict", Some("path")));
    assert!(err.to_string().contains("version 1"), "{err}");
    assert_eq!(world.fake.primary_token(&seed.live.sid).as_deref(), Some(seed.live.auth_token.as_str()));
    // Cancel still signs in with the token the rotation started from (KV v2 keeps it).
    assert_eq!(world.core.cancel_rotation(&rotation).await.unwrap().step, RotationStep::Cancelled);
    assert_eq!(bao.ok(&["kv", "get", "-field=value", &path]), "0".repeat(32), "their version stays");
    bao.ok(&["kv", "put", &path, &format!("value={}", seed.live.auth_token)]);

    let done = world.core.rotate(&subject).await.unwrap();
    assert_eq!(done.step, RotationStep::Done, "{:?}", done.outcome);
    let primary = world.fake.primary_token(&seed.live.sid).unwrap();
    assert_ne!(primary, seed.live.auth_token);
    assert_eq!(bao.ok(&["kv", "get", "-field=value", &path]), primary);
    assert_eq!(
        bao.ok(&["read", "-field=current_version", &format!("secret/metadata/patchbay/{}", asset.id)]),
        "4",
        "Patchbay's, theirs, the admins' fix, the rotation's"
    );
    assert_eq!(
        world.core.test_connection(&connection.id).await.unwrap().status,
        patchbay_core::ConnectionStatus::Connected
    );

    // Deleting the asset removes every version Patchbay wrote.
    world.core.delete_asset("Shared/Team", "Twilio prod", true).await.unwrap();
    assert!(bao.run(&["kv", "get", &path]).is_err(), "gone from the store");
    let db = std::fs::read(world.config.database_path()).unwrap();
    assert!(!db.windows(primary.len()).any(|w| w == primary.as_bytes()), "no token in the database");
}

#[tokio::test]
async fn a_linked_asset_is_rotated_only_when_asked_and_its_other_keys_stay() {
    let world = World::new();
    let seed = world.fake.seed();
    let bao = OpenBao::start();
    bao.policy("twilio", r#"path "secret/data/twilio/*" { capabilities = ["read", "update"] }"#);
    bao.ok(&["kv", "put", "secret/twilio/prod", &format!("auth_token={}", seed.live.auth_token), "owner=ops"]);
    let credentials = StoreCredentials::Token(Secret::new(bao.token(&["twilio"])));
    world.core.add_store(store("Vault", &bao, None, credentials)).await.unwrap();
    world.core.link_asset("Shared", "Twilio prod", "Vault", "twilio/prod", "auth_token").await.unwrap();
    let mut new = world.live("+15551230001");
    new.secret = Some(SecretSource::Asset("Twilio prod".into()));
    world.core.add_connection(new).await.unwrap();

    let subject = RotationSubject::Asset { folder: "Shared".into(), name: "Twilio prod".into(), write_linked: true };
    let done = world.core.rotate(&subject).await.unwrap();
    assert_eq!(done.step, RotationStep::Done, "{:?}", done.outcome);
    let primary = world.fake.primary_token(&seed.live.sid).unwrap();
    assert_eq!(bao.ok(&["kv", "get", "-field=auth_token", "secret/twilio/prod"]), primary);
    assert_eq!(bao.ok(&["kv", "get", "-field=owner", "secret/twilio/prod"]), "ops", "the admins' other keys stay");
}

/// How many asset rows the database holds, hidden (pending) ones included.
fn asset_rows(world: &World) -> i64 {
    let db = rusqlite::Connection::open(world.config.database_path()).unwrap();
    db.query_row("SELECT count(*) FROM assets", [], |row| row.get(0)).unwrap()
}

/// A store registered through a proxy that loses the answers to managed writes.
async fn store_behind_dropping_proxy(world: &World, bao: &OpenBao) -> DroppingProxy {
    let proxy = DroppingProxy::start(&bao.address);
    let mut behind = store("Company vault", bao, None, StoreCredentials::Token(Secret::new(bao.root_token.clone())));
    behind.address = proxy.address.clone();
    world.core.add_store(behind).await.unwrap();
    proxy
}

/// Whether OpenBao itself (not through the proxy) has any version at the lost write's
/// path; only its own "No value found" counts as gone, never another failure of `bao`.
fn in_openbao(bao: &OpenBao, lost_path: &str) -> bool {
    let id = lost_path.rsplit('/').next().unwrap();
    match bao.run(&["kv", "metadata", "get", &format!("secret/patchbay/{id}")]) {
        Ok(_) => true,
        Err(err) if err.contains("No value found") => false,
        Err(err) => panic!("bao could not tell: {err}"),
    }
}

#[tokio::test]
async fn a_managed_write_whose_answer_was_lost_is_removed_from_the_store_at_once() {
    let world = World::new();
    let bao = OpenBao::start();
    let proxy = store_behind_dropping_proxy(&world, &bao).await;

    let value = Secret::new("a-token-value");
    let err = world.core.create_asset("Shared", "Twilio prod", value, Some("Company vault")).await.unwrap_err();
    assert_eq!(err.code(), "store_unreachable", "{err}");
    let lost = proxy.lost_answers();
    assert_eq!(lost.len(), 1, "the write reached OpenBao: {lost:?}");
    assert!(!in_openbao(&bao, &lost[0]), "the write that landed was removed");
    assert_eq!(asset_rows(&world), 0);
    // Nothing is left holding the name.
    world.core.create_asset("Shared", "Twilio prod", Secret::new("x"), Some("os")).await.unwrap();
}

#[tokio::test]
async fn a_lost_write_the_store_cannot_undo_now_is_removed_by_the_next_process() {
    let mut world = World::new();
    let bao = OpenBao::start();
    let proxy = store_behind_dropping_proxy(&world, &bao).await;
    proxy.hold_lost_answers(Duration::from_millis(300));

    // The network goes down while the answer is lost: the cleanup cannot reach the store.
    let create = world.core.create_asset("Shared", "Twilio prod", Secret::new("a-token-value"), Some("Company vault"));
    let (created, ()) = tokio::join!(create, async {
        while proxy.lost_answers().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        proxy.set_offline(true);
    });
    assert_eq!(created.unwrap_err().code(), "store_unreachable");
    let lost = proxy.lost_answers();
    assert!(in_openbao(&bao, &lost[0]), "the write landed");
    assert!(world.core.list_assets(None).unwrap().is_empty(), "never listed");
    assert_eq!(asset_rows(&world), 1, "the pending row stays for repair");
    world.core.repair().await.unwrap();
    assert_eq!(asset_rows(&world), 1, "a live process's row is its own");

    proxy.set_offline(false);
    world.restart();
    world.core.repair().await.unwrap();
    assert!(!in_openbao(&bao, &lost[0]), "repair removed the write");
    assert_eq!(asset_rows(&world), 0);
}

#[tokio::test]
async fn a_managed_write_given_up_on_midway_is_left_for_repair_and_removed() {
    let mut world = World::new();
    let bao = OpenBao::start();
    let proxy = store_behind_dropping_proxy(&world, &bao).await;
    proxy.hold_lost_answers(Duration::from_secs(2));

    // The window's Cancel drops the call once the write has reached the store.
    tokio::select! {
        _ = world.core.create_asset("Shared", "Twilio prod", Secret::new("a-token-value"), Some("Company vault")) => {
            panic!("the answer is held back")
        }
        () = async {
            while proxy.lost_answers().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } => {}
    }
    let lost = proxy.lost_answers();
    assert!(in_openbao(&bao, &lost[0]), "the write landed");
    assert_eq!(asset_rows(&world), 1, "the row stays for repair: its write landed after all");

    world.restart();
    world.core.repair().await.unwrap();
    assert!(!in_openbao(&bao, &lost[0]), "repair removed the write");
    assert_eq!(asset_rows(&world), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_removal_cut_short_is_hidden_and_finished_by_a_retry_or_the_next_process() {
    let (vault, prompt) = PromptingStore::with_prompt();
    let mut world = World::with_vault_store(vault, |config| config.vault_timeout = Duration::from_millis(300));
    let bao = OpenBao::start();
    let root = || StoreCredentials::Token(Secret::new(bao.root_token.clone()));
    let first = world.core.add_store(store("First", &bao, None, root())).await.unwrap();
    let second = world.core.add_store(store("Second", &bao, None, root())).await.unwrap();
    let names = |world: &World| world.core.list_stores().unwrap().into_iter().map(|s| s.name).collect::<Vec<_>>();
    let store_rows = |world: &World| -> i64 {
        let db = rusqlite::Connection::open(world.config.database_path()).unwrap();
        db.query_row("SELECT count(*) FROM credential_stores", [], |row| row.get(0)).unwrap()
    };

    // The keyring never answers: the removal gives up with its store marked, hidden and unusable.
    prompt.lock();
    assert_eq!(world.core.remove_store("First").await.unwrap_err().code(), "vault_locked");
    assert_eq!(names(&world), ["Second"]);
    assert_eq!(world.core.test_store("First").await.unwrap_err().code(), "not_found");
    let link = world.core.link_asset("Shared", "Linked", "First", "twilio/prod", "auth_token").await;
    assert_eq!(link.unwrap_err().code(), "not_found");
    assert_eq!(world.core.set_folder_store("Shared", Some("First")).unwrap_err().code(), "not_found");
    let kept_there = world.core.create_asset("Shared", "Kept", Secret::new("v"), Some("First")).await;
    assert!(matches!(kept_there, Err(patchbay_core::Error::StoreNotFound(name)) if name == "First"));
    let again = store("first", &bao, None, root());
    assert_eq!(world.core.add_store(again).await.unwrap_err().code(), "name_taken", "not free until gone");

    // A retry once the keyring answers finishes it.
    prompt.unlock();
    retry_while_vault_waits(|| world.core.remove_store("First")).await.expect("the retry finishes the removal");
    assert_eq!(world.vault_value(&format!("store/{}", first.id)), None);
    assert_eq!(store_rows(&world), 1);

    // This time the process ends first: the next one's repair finishes the removal.
    prompt.lock();
    assert_eq!(world.core.remove_store("Second").await.unwrap_err().code(), "vault_locked");
    world.restart();
    prompt.unlock();
    retry_while_vault_waits(|| world.core.repair()).await.expect("repair finishes the removal");
    assert_eq!(world.vault_value(&format!("store/{}", second.id)), None);
    assert_eq!(store_rows(&world), 0);
    assert!(names(&world).is_empty());
    // The CLI repairs before each command: its retry of that removal is then done.
    world.core.remove_store("Second").await.expect("a retry after repair finished it is done");
    assert_eq!(world.core.remove_store("Second").await.unwrap_err().code(), "not_found", "only once");
}

/// Calls `call` again while the vault still waits on a call that was given up on.
async fn retry_while_vault_waits<F: Future<Output = patchbay_core::Result<()>>>(
    call: impl Fn() -> F,
) -> patchbay_core::Result<()> {
    for _ in 0..100 {
        match call().await {
            Err(err) if err.code() == "vault_locked" => tokio::time::sleep(Duration::from_millis(50)).await,
            other => return other,
        }
    }
    call().await
}

/// Waits (bounded) until `ready` holds, letting the other futures of the test run.
async fn until(what: &str, ready: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "never got there: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_racing_the_removal_of_its_store_is_told_by_name_that_the_store_is_gone() {
    // The OS vault waits on a prompt: the link waits there for the store's credentials,
    // after it found the store by name, while the removal goes ahead.
    let (vault_store, prompt) = patchbay_tests::locked_vault::PromptingStore::with_prompt();
    let world = World::with_vault_store(vault_store, |_| {});
    let bao = OpenBao::start();
    bao.ok(&["kv", "put", "secret/twilio/prod", "auth_token=abc"]);
    let root = StoreCredentials::Token(Secret::new(bao.root_token.clone()));
    let added = world.core.add_store(store("Company vault", &bao, None, root)).await.unwrap();

    prompt.lock();
    let link = world.core.link_asset("Shared", "Twilio ops", "Company vault", "twilio/prod", "auth_token");
    let remove = async {
        until("the link reads the store's credentials", || prompt.waiting() == 1).await;
        world.core.remove_store("Company vault").await
    };
    let unlock = async {
        until("the removal deletes the store's credentials", || prompt.waiting() == 2).await;
        prompt.unlock();
    };
    let (linked, removed, ()) = tokio::join!(link, remove, unlock);

    removed.unwrap();
    let err = linked.unwrap_err();
    assert_eq!(err.code(), "not_found", "{err}");
    let message = err.to_string();
    assert!(message.contains("credential store") && message.contains("'Company vault'"), "{message}");
    assert!(!message.contains(&added.id), "a name, never the store's id: {message}");
    assert!(world.core.list_assets(None).unwrap().is_empty(), "no asset of a removed store");
}
