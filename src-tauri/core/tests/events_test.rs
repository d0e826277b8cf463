//! Events by polling, in the core: what each poll asks Twilio, and what turning events
//! off and on again does.

mod common;

use std::time::Duration;

use common::World;
use patchbay_core::instances::{EventSettings, InstanceSettings, InstanceSpec};
use patchbay_core::{Secret, SecretSource};

fn spec(world: &World, events: bool) -> InstanceSpec {
    let seed = world.fake.seed();
    InstanceSpec {
        folder: "Shared".into(),
        name: "Inbox".into(),
        tags: vec![],
        connector: "twilio".into(),
        auth_method: None,
        values: world.live(&seed.live.phone_numbers[0]).values,
        secret: Some(SecretSource::Value(Secret::new(seed.live.auth_token.clone()))),
        settings: InstanceSettings {
            events: EventSettings {
                enabled: events,
                callback_url: Some("https://hooks.example.com/sms".into()),
                ..Default::default()
            },
            ..Default::default()
        },
        signature_key: None,
    }
}

/// Requests the fake received for the account's Messages list.
fn message_requests(world: &World) -> usize {
    world.fake.requests().iter().filter(|r| r.method == "GET" && r.path.ends_with("/Messages.json")).count()
}

/// Requests one steady-state poll makes for an instance whose events have been on for
/// two months, during which its number received `older` messages.
async fn requests_per_poll(older: usize) -> usize {
    let world = World::new();
    let seed = world.fake.seed();
    let (instance, _) = world.core.provision_instance(spec(&world, true)).await.unwrap();
    let id = instance.connection.id;
    let db = rusqlite::Connection::open(world.config.database_path()).unwrap();
    let two_months_ago = (chrono::Utc::now() - chrono::Duration::days(60)).to_rfc3339();
    db.execute("UPDATE event_cursors SET enabled_at = ?2 WHERE connection_id = ?1", [&id, &two_months_ago]).unwrap();
    let month_ago = chrono::Utc::now() - chrono::Duration::days(30);
    for n in 0..older {
        let number = &seed.live.phone_numbers[0];
        world.fake.receive_message_at(&seed.live.sid, "+15557654321", number, &format!("old {n}"), month_ago);
    }
    world.core.poll_events(&id).await.unwrap();
    let before = message_requests(&world);
    world.core.poll_events(&id).await.unwrap();
    message_requests(&world) - before
}

#[tokio::test]
async fn a_poll_costs_the_same_however_long_the_account_history() {
    let fresh = requests_per_poll(0).await;
    let old = requests_per_poll(100_000).await;
    println!("requests per poll: {fresh} with no older messages, {old} with 100,000 older messages");
    assert_eq!((fresh, old), (1, 1));
}

#[tokio::test]
async fn turning_events_off_forgets_the_cursor_and_on_again_starts_from_then() {
    let world = World::new();
    let seed = world.fake.seed();
    let (instance, _) = world.core.provision_instance(spec(&world, true)).await.unwrap();
    let id = instance.connection.id.clone();
    world.fake.receive_message(&seed.live.sid, "+15557654321", &seed.live.phone_numbers[0], "while on");
    assert_eq!(world.core.poll_events(&id).await.unwrap(), 1);

    let mut off = spec(&world, false);
    off.secret = None;
    world.core.replace_instance(&id, off).await.unwrap();
    world.fake.receive_message(&seed.live.sid, "+15557654321", &seed.live.phone_numbers[0], "while off");
    assert!(world.core.poll_events(&id).await.is_err(), "no cursor while events are off");
    // Twilio's dates have whole seconds: the next second is unambiguously after.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let mut on = spec(&world, true);
    on.secret = None;
    world.core.replace_instance(&id, on).await.unwrap();
    assert_eq!(world.core.poll_events(&id).await.unwrap(), 0, "the time events were off is not replayed");
    world.fake.receive_message(&seed.live.sid, "+15557654321", &seed.live.phone_numbers[0], "on again");
    assert_eq!(world.core.poll_events(&id).await.unwrap(), 1);
}

#[tokio::test]
async fn test_credentials_cannot_have_events() {
    let world = World::new();
    let seed = world.fake.seed();
    let mut test = spec(&world, true);
    common::set(&mut test.values, "account_sid", Some(&seed.test.sid));
    common::set(&mut test.values, "phone_number", Some("+15005550006"));
    common::set(&mut test.values, "test_credentials", Some("true"));
    test.secret = Some(SecretSource::Value(Secret::new(seed.test.auth_token.clone())));
    let err = world.core.provision_instance(test).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("invalid_input", Some("event.notification.enabled")));
    assert!(err.to_string().contains("20008"), "{err}");
}

#[tokio::test]
async fn a_failing_poll_shows_on_the_instance() {
    let world = World::new();
    let (instance, _) = world.core.provision_instance(spec(&world, true)).await.unwrap();
    let id = instance.connection.id;
    let messages = format!("/2010-04-01/Accounts/{}/Messages.json", world.fake.seed().live.sid);
    // Failing on every attempt the client makes (the first and its two retries).
    world.fake.inject_on(&messages, patchbay_tests::fake_twilio::Fault::Status(503), 3);
    assert!(world.core.poll_events(&id).await.is_err());
    let poller = world.core.instance(&id).unwrap().poller.expect("events are on");
    assert_eq!(poller.last_error_code.as_deref(), Some("twilio_server_error"));
    assert!(poller.last_polled_at.is_none() && poller.last_attempt_at.is_some());
    let failing = world.core.connection(&id).unwrap().events_failing.expect("the window's row says so too");
    assert_eq!(failing.code, "twilio_server_error");

    world.core.poll_events(&id).await.unwrap();
    let poller = world.core.instance(&id).unwrap().poller.unwrap();
    assert_eq!((poller.last_error_code, poller.last_polled_at.is_some()), (None, true), "recovered");
    assert_eq!(world.core.connection(&id).unwrap().events_failing, None);
}

#[tokio::test]
async fn an_account_level_instance_hears_every_number_and_a_numbered_one_only_its_own() {
    let world = World::new();
    let seed = world.fake.seed();
    let mut whole = spec(&world, true);
    common::set(&mut whole.values, "phone_number", None);
    whole.name = "Whole account".into();
    let (whole, _) = world.core.provision_instance(whole).await.unwrap();
    let (one, _) = world.core.provision_instance(spec(&world, true)).await.unwrap();
    for number in &seed.live.phone_numbers[..2] {
        world.fake.receive_message(&seed.live.sid, "+15557654321", number, "hello");
    }
    assert_eq!(world.core.poll_events(&whole.connection.id).await.unwrap(), 2);
    assert_eq!(world.core.poll_events(&one.connection.id).await.unwrap(), 1);
}
