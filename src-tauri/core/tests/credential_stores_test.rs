//! Registering credential stores against a real OpenBao (`bao server -dev`): a token and
//! an AppRole sign in, and each way a store can be wrong has its own code: sealed, a bad
//! token, a mount that is missing or KV v1, an address nothing answers.

mod common;

use common::World;
use patchbay_core::Secret;
use patchbay_core::credential_stores::{NewStore, StoreCredentials};
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

/// What Patchbay needs under the mount for the assets it manages; a token with any
/// capability under a mount may read the mount's type (sys/internal/ui/mounts).
const READ_SECRET_MOUNT: &str = r#"path "secret/data/patchbay/*" { capabilities = ["create", "read", "update"] }"#;

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
    bao.ok(&["token", "revoke", &token]);
    assert_eq!(world.core.test_store("Vault").await.unwrap_err().code(), "store_auth_failed");
    bao.ok(&["operator", "seal"]);
    assert_eq!(world.core.test_store("Vault").await.unwrap_err().code(), "store_sealed");
    assert_eq!(world.core.test_store("Other").await.unwrap_err().code(), "not_found");
}
