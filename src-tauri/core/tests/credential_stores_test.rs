//! Registering credential stores against a real OpenBao (`bao server -dev`): a token and
//! an AppRole sign in, and each way a store can be wrong has its own code: sealed, a bad
//! token, a mount that is missing or KV v1, an address nothing answers.

mod common;

use common::World;
use patchbay_core::credential_stores::{NewStore, StoreCredentials};
use patchbay_core::rotation::{RotationStep, RotationSubject};
use patchbay_core::{Secret, SecretSource};
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
