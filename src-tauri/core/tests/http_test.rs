//! The generic HTTP connector against a REST service on loopback: each way to
//! authenticate, the answers that refuse a connection, and the URLs refused before any
//! request is sent.

mod common;

use common::World;
use patchbay_core::{AuthRef, ConnectionStatus, FieldValue, FieldValues, NewConnection, Secret, SecretSource};
use patchbay_tests::fake_http::FakeHttp;

fn http(base: &str, path: &str, method: &str, extra: &[(&str, &str)], secret: Option<&str>) -> NewConnection {
    let mut values = FieldValues::from([
        ("base_url".into(), FieldValue::Text(base.into())),
        ("test_path".into(), FieldValue::Text(path.into())),
    ]);
    values.extend(extra.iter().map(|(name, value)| ((*name).to_owned(), FieldValue::Text((*value).into()))));
    NewConnection {
        folder: "Shared".into(),
        connector: "http".into(),
        auth_method: Some(method.into()),
        name: None,
        values,
        secret: secret.map(|secret| SecretSource::Value(Secret::new(secret))),
    }
}

#[tokio::test]
async fn every_way_to_authenticate_connects_and_sends_what_it_should() {
    let world = World::new();
    let fake = FakeHttp::start();
    let seed = fake.seed();

    let open = world.core.add_connection(http(fake.base(), "/status", "none", &[], None)).await.unwrap();
    assert_eq!((open.status.clone(), open.details["status"].as_str()), (ConnectionStatus::Connected, "200 OK"));
    assert_eq!(open.name, "HTTP 127.0.0.1");
    assert_eq!(world.vault_value(&format!("connection/{}", open.id)), None, "no secret, no vault entry");
    assert_eq!(world.core.test_connection(&open.id).await.unwrap().status, ConnectionStatus::Connected);

    let basic = http(fake.base(), "/basic/status", "basic", &[("username", &seed.username)], Some(&seed.password));
    let basic = world.core.add_connection(basic).await.unwrap();
    assert_eq!(basic.details["status"], "204 No Content");
    assert_eq!(world.vault_value(&format!("connection/{}", basic.id)), Some(seed.password.clone()));

    world.core.create_asset("Shared", "API token", Secret::new(seed.token.clone()), None).await.unwrap();
    let mut bearer = http(&format!("{}/", fake.base()), "/bearer/status", "bearer", &[], None);
    bearer.secret = Some(SecretSource::Asset("API token".into()));
    let bearer = world.core.add_connection(bearer).await.unwrap();
    assert_eq!(bearer.auth, AuthRef::Asset { name: "API token".into(), folder: "Shared".into() });

    let key = http(fake.base(), "/key/status", "api_key_header", &[("header_name", "X-API-Key")], Some(&seed.api_key));
    world.core.add_connection(key).await.unwrap();

    let schemes: Vec<Option<String>> = fake.requests().into_iter().map(|r| r.scheme).collect();
    assert_eq!(schemes, [None, None, Some("Basic".into()), Some("Bearer".into()), None]);
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths[3], "/api/bearer/status", "no doubled slash between the base URL and the path");

    // A connection without a secret is deleted like any other.
    world.core.delete_connection(&open.id).await.unwrap();
    assert!(world.core.connection(&open.id).is_err());
}

#[tokio::test]
async fn refusals_say_which_status_came_back() {
    let world = World::new();
    let fake = FakeHttp::start();
    let seed = fake.seed();
    let wrong = http(fake.base(), "/basic/status", "basic", &[("username", "robot")], Some("wrong"));
    let err = world.core.add_connection(wrong).await.unwrap_err();
    assert_eq!((err.code(), err.to_body().service_code.as_deref()), ("http_unauthorized", Some("401")));
    assert!(err.to_string().contains("HTTP 401 Unauthorized") && !err.to_string().contains("wrong"), "{err}");

    let key = http(fake.base(), "/key/status", "api_key_header", &[("header_name", "X-Other")], Some(&seed.api_key));
    assert_eq!(world.core.add_connection(key).await.unwrap_err().code(), "http_unauthorized");

    let missing = world.core.add_connection(http(fake.base(), "/nothing", "none", &[], None)).await.unwrap_err();
    assert_eq!((missing.code(), missing.field()), ("http_status", Some("test_path")));
    assert!(missing.to_string().contains("HTTP 404 Not Found"), "{missing}");

    let moved = world.core.add_connection(http(fake.base(), "/moved", "none", &[], None)).await.unwrap_err();
    assert_eq!((moved.code(), moved.field()), ("http_redirect", Some("base_url")));
    assert!(!moved.to_string().contains("elsewhere.example"), "a Location may carry a token: {moved}");
    assert_eq!(world.core.list_connections(&Default::default()).unwrap().total, 0);
}

#[tokio::test]
async fn plain_http_beyond_this_machine_and_malformed_input_are_refused_before_any_request() {
    let world = World::new();
    for (base, field) in [
        ("http://10.0.0.5/api", "base_url"),
        ("http://api.example.com", "base_url"),
        ("ftp://files.example.com", "base_url"),
        ("https://api.example.com/v1?x=1", "base_url"),
    ] {
        let err = world.core.add_connection(http(base, "/status", "none", &[], None)).await.unwrap_err();
        assert_eq!((err.code(), err.field()), ("invalid_input", Some(field)), "{base}: {err}");
    }
    let err =
        world.core.add_connection(http("https://api.example.com", "status", "none", &[], None)).await.unwrap_err();
    assert_eq!(err.field(), Some("test_path"));
    let colon = http("https://api.example.com", "/s", "basic", &[("username", "a:b")], Some("x"));
    assert_eq!(world.core.add_connection(colon).await.unwrap_err().field(), Some("username"));
    let spaced = http("https://api.example.com", "/s", "bearer", &[], Some("two words"));
    assert_eq!(world.core.add_connection(spaced).await.unwrap_err().field(), Some("token"));
    let unwanted = http("https://api.example.com", "/s", "none", &[], Some("x"));
    assert_eq!(world.core.add_connection(unwanted).await.unwrap_err().field(), Some("secret"));
}

#[tokio::test]
async fn a_loopback_only_patchbay_refuses_other_hosts_before_resolving_them() {
    let world = World::new();
    assert!(world.config.http_loopback_only, "the tests' worlds never call beyond this machine");
    let err =
        world.core.add_connection(http("https://api.example.com", "/status", "none", &[], None)).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("invalid_input", Some("base_url")));
    assert!(err.to_string().contains("only call this machine"), "{err}");
}
