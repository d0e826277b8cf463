//! Connect = validate with Twilio, then save: every rule against the fake Twilio.

mod common;

use std::time::Duration;

use common::{TwilioFields, World, twilio};
use patchbay_core::twilio::{Credentials, TwilioClient};
use patchbay_core::{ConnectionChanges, ConnectionQuery, ConnectionStatus, Error, Secret, SecretSource};
use patchbay_tests::fake_twilio::{CredentialKind, Fault};

fn saved(world: &World) -> u32 {
    world.core.list_connections(&ConnectionQuery::default()).unwrap().total
}

fn no_message_sent_with_live_credentials(world: &World) {
    let live_posts = world
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/Messages.json") && r.credential == CredentialKind::Live)
        .count();
    assert_eq!(live_posts, 0, "a message was posted with live credentials");
}

#[tokio::test]
async fn live_credentials_connect_and_keep_the_account_details() {
    let world = World::new();
    let connection = world.core.add_connection(world.live("+1 (555) 123-0001")).await.unwrap();
    assert_eq!(connection.status, ConnectionStatus::Connected);
    assert_eq!(connection.phone(), Some("+15551230001"));
    assert_eq!(connection.name, "Twilio +15551230001");
    assert_eq!(connection.account_name(), Some("Acme Operations"));
    assert_eq!(connection.account_type(), Some("Full"));
    assert!(!connection.test_credentials());
    let token = world.fake.seed().live.auth_token;
    assert_eq!(world.vault_value(&format!("connection/{}", connection.id)), Some(token));
    no_message_sent_with_live_credentials(&world);
    let paths: Vec<String> = world.fake.requests().into_iter().map(|r| r.path).collect();
    assert!(paths[0].ends_with(&format!("/Accounts/{}.json", connection.account_sid())), "starts with GET Account");
}

#[tokio::test]
async fn trial_accounts_connect_too() {
    let world = World::new();
    let seed = world.fake.seed();
    let new = twilio("Shared", "+15551239001", &seed.trial.sid, &seed.trial.auth_token, false);
    let connection = world.core.add_connection(new).await.unwrap();
    assert_eq!(connection.account_type(), Some("Trial"));
    assert!(connection.rotatable, "its own live Auth Token");
}

#[tokio::test]
async fn test_credentials_connect_with_twilios_magic_from_number() {
    let world = World::new();
    let seed = world.fake.seed();
    let new = twilio("Shared", "+15005550006", &seed.test.sid, &seed.test.auth_token, true);
    let connection = world.core.add_connection(new).await.unwrap();
    assert_eq!(connection.status, ConnectionStatus::Connected);
    assert!(connection.test_credentials());
    assert!(!connection.rotatable, "Twilio refuses auth-token requests made with Test Credentials");
    let posts: Vec<_> = world.fake.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].credential, CredentialKind::Test);
}

#[tokio::test]
async fn credentials_must_match_the_test_toggle() {
    let world = World::new();
    let seed = world.fake.seed();

    let mut live_as_test = world.live("+15551230001");
    common::set(&mut live_as_test.values, "test_credentials", Some("true"));
    let err = world.core.add_connection(live_as_test).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("twilio_test_credentials_expected", Some("test_credentials")));
    assert!(err.to_string().contains("live credentials"));

    let test_as_live = twilio("Shared", "+15005550006", &seed.test.sid, &seed.test.auth_token, false);
    let err = world.core.add_connection(test_as_live).await.unwrap_err();
    assert_eq!((err.code(), err.twilio_code()), ("twilio_live_credentials_expected", Some(20008)));
    assert!(err.to_string().contains("Test Credentials"));

    assert_eq!(saved(&world), 0);
    no_message_sent_with_live_credentials(&world);
}

#[tokio::test]
async fn suspended_and_closed_accounts_are_refused_as_twilio_refuses_them() {
    let world = World::new();
    let seed = world.fake.seed();
    // Twilio answers 401 / 20003 for them, as for a wrong token: the message says so.
    for account in [&seed.suspended, &seed.closed] {
        let new = twilio("Shared", &account.phone_numbers[0], &account.sid, &account.auth_token, false);
        let err = world.core.add_connection(new).await.unwrap_err();
        assert_eq!((err.code(), err.twilio_code()), ("twilio_auth_failed", Some(20003)));
        let message = err.to_string();
        let (mistyped, suspended) = (message.find("mistyped").unwrap(), message.find("suspended or closed").unwrap());
        assert!(mistyped < suspended, "the likeliest cause first: {message}");
        assert_eq!(err.provider_message().as_deref(), Some("Authenticate"), "Twilio's own words travel along");
    }
    assert_eq!(saved(&world), 0);
}

#[tokio::test]
async fn twilio_403_and_404_have_their_own_errors() {
    let world = World::new();
    world.fake.inject_on(
        &format!("/2010-04-01/Accounts/{}.json", world.fake.seed().live.sid),
        patchbay_tests::fake_twilio::Fault::Error { status: 403, code: 20403, message: "Forbidden".into() },
        1,
    );
    let err = world.core.add_connection(world.live("+15551230001")).await.unwrap_err();
    assert_eq!((err.code(), err.twilio_code()), ("twilio_forbidden", Some(20403)));
    assert_eq!(err.provider_message().as_deref(), Some("Forbidden"));

    // An API base URL that is not Twilio's REST API (here: the Accounts host) has no
    // such account: that is what the user reads, not "wrong credentials".
    let mut config = world.config.clone();
    config.twilio.api_base = world.fake.accounts_base().to_owned();
    let elsewhere = patchbay_core::Patchbay::open_with_vault(
        config,
        patchbay_core::Vault::with_store(common::VAULT_SERVICE, world.vault_store.clone(), world.config.vault_timeout),
    )
    .unwrap();
    let err = elsewhere.add_connection(world.live("+15551230001")).await.unwrap_err();
    assert_eq!(err.code(), "twilio_account_not_found");
    assert!(err.to_string().contains("base URL"), "{err}");
}

#[tokio::test]
async fn twilios_newer_from_codes_mean_what_the_older_ones_did() {
    let world = World::new();
    let seed = world.fake.seed();
    let messages = format!("/2010-04-01/Accounts/{}/Messages.json", seed.test.sid);
    for code in [21659, 21660, 21661] {
        let fault = patchbay_tests::fake_twilio::Fault::Error { status: 400, code, message: format!("code {code}") };
        world.fake.inject_on(&messages, fault, 1);
        let new = twilio("Shared", "+15005550006", &seed.test.sid, &seed.test.auth_token, true);
        let err = world.core.add_connection(new).await.unwrap_err();
        assert_eq!((err.code(), err.twilio_code()), ("twilio_test_phone_invalid", Some(code)));
        assert!(err.to_string().contains("+15005550006"), "{err}");
    }
}

#[tokio::test]
async fn test_credentials_send_to_a_number_twilio_takes_as_valid() {
    let world = World::new();
    let seed = world.fake.seed();
    let new = twilio("Shared", "+15005550006", &seed.test.sid, &seed.test.auth_token, true);
    world.core.add_connection(new).await.unwrap();
    let sent = world.fake.requests().into_iter().find(|r| r.path.ends_with("/Messages.json")).unwrap();
    let to = sent.form.iter().find(|(key, _)| key == "To").map(|(_, value)| value.clone()).unwrap();
    let parsed = phonenumber::parse(None, &to).unwrap();
    assert!(phonenumber::is_valid(&parsed), "{to} is a valid number");
}

#[tokio::test]
async fn the_number_must_be_registered_in_the_account() {
    let world = World::new();
    let err = world.core.add_connection(world.live("+15551230009")).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("twilio_phone_not_in_account", Some("phone_number")));
    assert!(err.to_string().contains("+15551230009 is not registered"));
    // Twilio's filter also matches partial numbers; only the exact number counts.
    let err = world.core.add_connection(world.live("+15551230")).await.unwrap_err();
    assert_eq!(err.code(), "twilio_phone_not_in_account");
    assert_eq!(saved(&world), 0);
}

#[tokio::test]
async fn test_credentials_need_the_magic_number() {
    let world = World::new();
    let seed = world.fake.seed();
    for (phone, twilio_code) in
        [("+15005550001", 21212), ("+15005550007", 21606), ("+15551230001", 21606), ("+15005550008", 21611)]
    {
        let new = twilio("Shared", phone, &seed.test.sid, &seed.test.auth_token, true);
        let err = world.core.add_connection(new).await.unwrap_err();
        assert_eq!(
            (err.code(), err.twilio_code(), err.field()),
            ("twilio_test_phone_invalid", Some(twilio_code), Some("phone_number"))
        );
        assert!(err.to_string().contains("use +15005550006"), "{err}");
    }
    assert_eq!(saved(&world), 0);
}

#[tokio::test]
async fn wrong_sid_or_token_fail_authentication() {
    let world = World::new();
    let seed = world.fake.seed();
    let wrong_token = twilio("Shared", "+15551230001", &seed.live.sid, &"0".repeat(32), false);
    let err = world.core.add_connection(wrong_token).await.unwrap_err();
    assert_eq!((err.code(), err.twilio_code()), ("twilio_auth_failed", Some(20003)));
    let wrong_sid = twilio("Shared", "+15551230001", &format!("AC{}", "1".repeat(32)), &seed.live.auth_token, false);
    assert_eq!(world.core.add_connection(wrong_sid).await.unwrap_err().code(), "twilio_auth_failed");
    assert_eq!(saved(&world), 0);
}

#[tokio::test]
async fn local_checks_name_the_field_and_send_nothing() {
    let world = World::new();
    let seed = world.fake.seed();
    let cases = [
        (twilio("Shared", "5551230001", &seed.live.sid, &seed.live.auth_token, false), "phone_number"),
        (twilio("Shared", "+15551230001", "AC123", &seed.live.auth_token, false), "account_sid"),
        (twilio("Shared", "+15551230001", &seed.live.sid, "not-hex-not-32-long", false), "auth_token"),
    ];
    for (new, field) in cases {
        let err = world.core.add_connection(new).await.unwrap_err();
        assert_eq!((err.code(), err.field()), ("invalid_input", Some(field)));
        assert!(!err.to_string().contains("not-hex"), "the token is never echoed");
    }
    assert!(world.fake.requests().is_empty());
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_a_bounded_number_of_times() {
    let world = World::new();
    world.fake.inject(Fault::RateLimit, 2);
    world.core.add_connection(world.live("+15551230001")).await.expect("third attempt succeeds");

    world.fake.inject(Fault::RateLimit, 3);
    let err = world.core.add_connection(world.live("+15551230002")).await.unwrap_err();
    assert_eq!((err.code(), err.twilio_code()), ("twilio_rate_limited", Some(20429)));

    world.fake.inject(Fault::Status(503), 3);
    let err = world.core.add_connection(world.live("+15551230002")).await.unwrap_err();
    assert_eq!(err.code(), "twilio_server_error");
    assert!(err.to_string().contains("HTTP 503"));

    world.fake.inject(Fault::Status(500), 1);
    world.core.add_connection(world.live("+15551230002")).await.expect("retried after one 500");
}

#[tokio::test]
async fn a_slow_or_broken_twilio_gives_a_clear_error() {
    let world = World::with(|config| {
        config.twilio.request_timeout = Duration::from_millis(300);
        config.twilio.max_retries = 0;
    });
    world.fake.inject(Fault::Delay(Duration::from_secs(2)), 1);
    let err = world.core.add_connection(world.live("+15551230001")).await.unwrap_err();
    assert_eq!(err.code(), "twilio_unreachable");
    assert!(err.to_string().contains("no answer in time"), "{err}");

    world.fake.inject(Fault::MalformedJson, 1);
    assert_eq!(world.core.add_connection(world.live("+15551230001")).await.unwrap_err().code(), "twilio_server_error");

    world.fake.inject(Fault::DropConnection, 1);
    assert_eq!(world.core.add_connection(world.live("+15551230001")).await.unwrap_err().code(), "twilio_unreachable");
    assert_eq!(saved(&world), 0);
}

#[tokio::test]
async fn an_unreachable_host_is_reported_as_such() {
    let world = World::with(|config| {
        config.twilio.api_base = "http://127.0.0.1:9".into();
        config.twilio.max_retries = 1;
    });
    let err = world.core.add_connection(world.live("+15551230001")).await.unwrap_err();
    assert_eq!(err.code(), "twilio_unreachable");
    assert!(err.to_string().contains("127.0.0.1:9"));
}

#[tokio::test]
async fn names_are_unique_per_folder() {
    let world = World::new();
    let mut named = world.live("+15551230001");
    named.name = Some("Alerts".into());
    world.core.add_connection(named).await.unwrap();
    let mut again = world.live("+15551230002");
    again.name = Some("ALERTS".into());
    let err = world.core.add_connection(again).await.unwrap_err();
    assert_eq!(err.code(), "name_taken");
    world.core.create_folder("Shared/Finance").unwrap();
    let mut elsewhere = world.live("+15551230001");
    elsewhere.folder = "Shared/Finance".into();
    elsewhere.name = Some("Alerts".into());
    world.core.add_connection(elsewhere).await.expect("same name in another folder");
}

#[tokio::test]
async fn test_connection_records_what_twilio_says_now() {
    let world = World::new();
    let connection = world.core.add_connection(world.live("+15551230001")).await.unwrap();
    let tested = world.core.test_connection(&connection.id).await.unwrap();
    assert_eq!(tested.status, ConnectionStatus::Connected);

    // Rotate the token at Twilio behind Patchbay's back: the stored one stops working.
    let client = TwilioClient::new(world.config.twilio.clone());
    let seed = world.fake.seed();
    let old = Secret::new(seed.live.auth_token.clone());
    let credentials = Credentials::auth_token(&seed.live.sid, &old);
    client.create_secondary_auth_token(credentials).await.unwrap();
    let promoted = client.promote_secondary_auth_token(credentials).await.unwrap();
    assert_eq!(Some(format!("{promoted:?}")), Some("Secret(<redacted>)".into()));

    let err = world.core.test_connection(&connection.id).await.unwrap_err();
    assert_eq!(err.code(), "twilio_auth_failed");
    let after = world.core.connection(&connection.id).unwrap();
    match after.status {
        ConnectionStatus::Failed { code, .. } => assert_eq!(code, "twilio_auth_failed"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(after.last_checked_at >= tested.last_checked_at);
}

#[tokio::test]
async fn deleting_a_connection_removes_its_secret() {
    let world = World::new();
    let connection = world.core.add_connection(world.live("+15551230001")).await.unwrap();
    let user = format!("connection/{}", connection.id);
    assert!(world.vault_value(&user).is_some());
    world.core.delete_connection(&connection.id).await.unwrap();
    assert_eq!(world.vault_value(&user), None);
    assert!(matches!(world.core.connection(&connection.id), Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn edit_validates_again_and_saves_only_what_twilio_accepted() {
    let world = World::new();
    let seed = world.fake.seed();
    let connection = world.core.add_connection(world.live("+15551230001")).await.unwrap();
    let own_key = format!("connection/{}", connection.id);
    let changes = |name: &str, phone: &str, token: Option<SecretSource>| {
        let mut values = world.live(phone).values;
        values.insert("account_sid".into(), patchbay_core::FieldValue::Text(seed.live.sid.clone()));
        ConnectionChanges { name: name.into(), auth_method: None, values, secret: token }
    };

    // Keeping the token: the stored one is used.
    let edited = world.core.update_connection(&connection.id, changes("Alerts", "+15551230002", None)).await.unwrap();
    assert_eq!((edited.name.as_str(), edited.phone()), ("Alerts", Some("+15551230002")));

    // A wrong new token changes nothing, the old secret included.
    let wrong = Some(SecretSource::Value(Secret::new("0".repeat(32))));
    let err =
        world.core.update_connection(&connection.id, changes("Renamed", "+15551230001", wrong)).await.unwrap_err();
    assert_eq!(err.code(), "twilio_auth_failed");
    assert_eq!(world.core.connection(&connection.id).unwrap().name, "Alerts");
    assert_eq!(world.vault_value(&own_key), Some(seed.live.auth_token.clone()));

    // Switching to a credential asset drops the connection's own secret.
    world.core.create_asset("Shared", "token", Secret::new(seed.live.auth_token.clone()), None).await.unwrap();
    let via_asset = Some(SecretSource::Asset("token".into()));
    let edited =
        world.core.update_connection(&connection.id, changes("Alerts", "+15551230002", via_asset)).await.unwrap();
    assert_eq!(edited.auth, patchbay_core::AuthRef::Asset { name: "token".into(), folder: "Shared".into() });
    assert_eq!(world.vault_value(&own_key), None);

    // And back to a typed token.
    let typed = Some(SecretSource::Value(Secret::new(seed.live.auth_token.clone())));
    let edited = world.core.update_connection(&connection.id, changes("Alerts", "+15551230002", typed)).await.unwrap();
    assert_eq!(edited.auth, patchbay_core::AuthRef::Own);
    assert_eq!(world.vault_value(&own_key), Some(seed.live.auth_token.clone()));

    let other = world.core.add_connection(world.live("+15551230001")).await.unwrap();
    let err = world.core.update_connection(&other.id, changes("alerts", "+15551230001", None)).await.unwrap_err();
    assert_eq!(err.code(), "name_taken");
}

#[tokio::test]
async fn delivered_event_payloads_are_kept_only_as_long_as_the_retention_says() {
    let world = World::with(|config| config.event_retention = std::time::Duration::from_secs(3600));
    let connection = world.core.add_connection(world.live("+15551230001")).await.unwrap();
    let db = rusqlite::Connection::open(world.config.database_path()).unwrap();
    for (sid, delivered_at) in [("SMold", "2020-01-01T00:00:00.000Z"), ("SMnew", "2999-01-01T00:00:00.000Z")] {
        db.execute(
            "INSERT INTO event_deliveries (connection_id, message_sid, payload, state, next_attempt_at, created_at, delivered_at)
             VALUES (?1, ?2, '{\"body\":\"secret plans\"}', 'delivered', ?3, ?3, ?3)",
            [&connection.id, sid, delivered_at],
        )
        .unwrap();
    }
    assert_eq!(world.core.forget_delivered_payloads().unwrap(), 1);
    let payload = |sid: &str| -> String {
        db.query_row("SELECT payload FROM event_deliveries WHERE message_sid = ?1", [sid], |r| r.get(0)).unwrap()
    };
    assert_eq!(payload("SMold"), "", "an old body is forgotten");
    assert!(payload("SMnew").contains("secret plans"), "a recent one is kept");
}

#[tokio::test]
async fn a_default_name_that_is_taken_gets_a_number() {
    let world = World::new();
    let first = world.core.add_connection(world.live("+15551230001")).await.unwrap();
    let second = world.core.add_connection(world.live("+15551230001")).await.unwrap();
    let third = world.core.add_connection(world.live("+1 555 123 0001")).await.unwrap();
    assert_eq!(
        [first.name, second.name, third.name],
        ["Twilio +15551230001", "Twilio +15551230001 (2)", "Twilio +15551230001 (3)"]
    );
    // A name the user chose is never renamed behind their back.
    let mut chosen = world.live("+15551230001");
    chosen.name = Some("Twilio +15551230001".into());
    assert_eq!(world.core.add_connection(chosen).await.unwrap_err().code(), "name_taken");
}

#[tokio::test]
async fn a_connection_without_a_number_is_account_level() {
    let world = World::new();
    let seed = world.fake.seed();
    let mut account_level = world.live("+15551230001");
    common::set(&mut account_level.values, "phone_number", None);
    let before = world.fake.requests().len();
    let connection = world.core.add_connection(account_level).await.unwrap();
    assert_eq!((connection.phone(), connection.name.as_str()), (None, format!("Twilio {}", seed.live.sid).as_str()));
    let asked: Vec<String> = world.fake.requests()[before..].iter().map(|r| r.path.clone()).collect();
    assert_eq!(asked, [format!("/2010-04-01/Accounts/{}.json", seed.live.sid)], "credentials and account only");

    // With test credentials the 20008 answer is the proof: no message is sent.
    let mut test = common::twilio("Shared", "+15005550006", &seed.test.sid, &seed.test.auth_token, true);
    common::set(&mut test.values, "phone_number", Some("   "));
    let connection = world.core.add_connection(test).await.unwrap();
    assert_eq!(connection.phone(), None, "blank is no number");
    assert!(world.fake.requests().iter().all(|r| !r.path.ends_with("/Messages.json")));

    // A number, when given, is still checked against the account.
    let mut wrong = world.live("+15551230009");
    wrong.name = Some("Wrong".into());
    assert_eq!(world.core.add_connection(wrong).await.unwrap_err().code(), "twilio_phone_not_in_account");
}

#[tokio::test]
async fn a_429_is_retried_after_twilios_retry_after() {
    // The configured backoff is 5 ms; Twilio's Retry-After says 1 s, and wins.
    let world = World::new();
    world.fake.inject(patchbay_tests::fake_twilio::Fault::RateLimit, 1);
    let started = std::time::Instant::now();
    world.core.add_connection(world.live("+15551230001")).await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(950), "waited {:?}", started.elapsed());
}
