//! Slack connections: Connect = auth.test against the fake Slack, every answer Slack
//! documents, and what is kept (workspace, bot user, scopes; the token in the vault).

mod common;

use common::World;
use patchbay_core::{ConnectionStatus, FieldValues, NewConnection, Secret, SecretSource};
use patchbay_tests::fake_slack::{FakeSlack, SlackFault};

fn slack_world() -> (World, FakeSlack) {
    let slack = FakeSlack::start();
    let world = World::with(|config| config.slack_api_base = slack.api_base().to_owned());
    (world, slack)
}

fn slack(token: &str) -> NewConnection {
    NewConnection {
        folder: "Shared".into(),
        connector: "slack".into(),
        auth_method: None,
        name: None,
        values: FieldValues::new(),
        secret: Some(SecretSource::Value(Secret::new(token))),
    }
}

#[tokio::test]
async fn a_bot_token_with_chat_write_connects_and_names_its_workspace() {
    let (world, fake) = slack_world();
    let bot = fake.seed().bot;
    let connection = world.core.add_connection(slack(&bot.token)).await.unwrap();
    assert_eq!(connection.status, ConnectionStatus::Connected);
    assert_eq!((connection.connector.as_str(), connection.auth_method.as_str()), ("slack", "bot_token"));
    assert_eq!(connection.name, "Slack Acme Robots");
    assert_eq!(connection.details["workspace"], "Acme Robots");
    assert_eq!(connection.details["bot_user"], "patchbay");
    assert_eq!(connection.details["scopes"], "channels:read, chat:write, users:read");
    assert!(connection.fields.is_empty(), "a bot token is all Slack asks for, and it is a secret");
    assert_eq!(world.vault_value(&format!("connection/{}", connection.id)), Some(bot.token.clone()));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("POST", "/api/auth.test"));
    assert_eq!(requests[0].token_from, "header", "the token travels in the Authorization header");

    // Test connection asks again with the stored token.
    let tested = world.core.test_connection(&connection.id).await.unwrap();
    assert_eq!(tested.status, ConnectionStatus::Connected);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn each_refusal_slack_documents_has_its_own_code_and_saves_nothing() {
    let (world, fake) = slack_world();
    let seed = fake.seed();
    let unknown = format!("xoxb-{}", "1".repeat(24));
    for (token, code, field) in [
        (unknown.as_str(), "slack_invalid_auth", Some("bot_token")),
        (seed.revoked.token.as_str(), "slack_token_revoked", Some("bot_token")),
        (seed.expired.token.as_str(), "slack_token_expired", Some("bot_token")),
        (seed.inactive.token.as_str(), "slack_account_inactive", None),
        (seed.read_only.token.as_str(), "slack_missing_scope", Some("bot_token")),
    ] {
        let err = world.core.add_connection(slack(token)).await.unwrap_err();
        assert_eq!((err.code(), err.field()), (code, field), "{err}");
        assert!(!err.to_string().contains(token), "the token is never echoed: {err}");
        assert!(err.to_body().service_code.is_some(), "Slack's own code is passed on: {err}");
    }
    let err = world.core.add_connection(slack(&seed.read_only.token)).await.unwrap_err();
    assert!(err.to_string().contains("it has: channels:read"), "{err}");
    let page = world.core.list_connections(&Default::default()).unwrap();
    assert_eq!(page.total, 0);
}

#[tokio::test]
async fn the_token_format_is_checked_before_slack_is_asked() {
    let (world, fake) = slack_world();
    for wrong in ["xoxp-123-456", "not a token", ""] {
        let err = world.core.add_connection(slack(wrong)).await.unwrap_err();
        assert_eq!((err.code(), err.field()), ("invalid_input", Some("bot_token")), "{wrong:?}");
    }
    let mut with_values = slack(&fake.seed().bot.token);
    with_values.values.insert("channel".into(), patchbay_core::FieldValue::Text("#general".into()));
    assert!(world.core.add_connection(with_values).await.unwrap_err().to_string().contains("no field 'channel'"));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_429_is_waited_out_when_slack_asks_for_little_and_reported_when_it_asks_for_long() {
    let (world, fake) = slack_world();
    let token = fake.seed().bot.token;
    fake.inject(SlackFault::RateLimited(1), 1);
    let started = std::time::Instant::now();
    world.core.add_connection(slack(&token)).await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(950), "waited {:?}", started.elapsed());

    fake.inject(SlackFault::RateLimited(30), 1);
    let err = world.core.add_connection(slack(&token)).await.unwrap_err();
    assert_eq!(err.code(), "slack_rate_limited");
    assert!(err.to_string().contains("asks to wait 30 s"), "{err}");
}

#[tokio::test]
async fn a_failing_slack_is_retried_then_reported() {
    let (world, fake) = slack_world();
    let token = fake.seed().bot.token;
    fake.inject(SlackFault::Status(503), 1);
    world.core.add_connection(slack(&token)).await.expect("auth.test is repeated after a 503");
    fake.inject(SlackFault::Status(503), 3);
    let err = world.core.add_connection(slack(&token)).await.unwrap_err();
    assert_eq!((err.code(), err.to_body().service_code.as_deref()), ("slack_server_error", Some("503")));
}

#[tokio::test]
async fn a_credential_asset_holds_the_bot_token_and_rotation_and_events_are_not_offered() {
    let (world, fake) = slack_world();
    let token = fake.seed().bot.token;
    world.core.create_asset("Shared", "Slack bot", Secret::new(token), None).await.unwrap();
    let mut new = slack("");
    new.secret = Some(SecretSource::Asset("Slack bot".into()));
    let connection = world.core.add_connection(new).await.unwrap();
    assert_eq!(connection.auth, patchbay_core::AuthRef::Asset { name: "Slack bot".into(), folder: "Shared".into() });
    let assets = world.core.list_assets(Some("Shared")).unwrap();
    assert_eq!((assets[0].used_by, assets[0].rotatable), (1, false), "a Slack token is not Patchbay's to rotate");
    let subject = patchbay_core::rotation::RotationSubject::Connection { id: connection.id.clone() };
    let err = world.core.plan_rotation(&subject).await.unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(err.to_string().contains("no Auth Token that Patchbay can rotate"), "{err}");
}
