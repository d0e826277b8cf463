//! Twilio SendGrid connections: the key's scopes (mail.send), the sender (a verified
//! Single Sender, or an authenticated domain), the plan, and the EU host, against the
//! fake SendGrid.

mod common;

use common::World;
use patchbay_core::{ConnectionStatus, FieldValue, FieldValues, NewConnection, Secret, SecretSource};
use patchbay_tests::fake_sendgrid::{FakeSendGrid, SendGridFault};

fn sendgrid_world() -> (World, FakeSendGrid) {
    let fake = FakeSendGrid::start();
    let world = World::with(|config| {
        config.sendgrid_api_base = fake.api_base().to_owned();
        config.sendgrid_eu_api_base = fake.eu_api_base().to_owned();
    });
    (world, fake)
}

fn sendgrid(key: &str, sender: &str, region: Option<&str>) -> NewConnection {
    let mut values = FieldValues::from([("sender_email".into(), FieldValue::Text(sender.into()))]);
    values.extend(region.map(|region| ("region".to_owned(), FieldValue::Text(region.into()))));
    NewConnection {
        folder: "Shared".into(),
        connector: "sendgrid".into(),
        auth_method: None,
        name: None,
        values,
        secret: Some(SecretSource::Value(Secret::new(key))),
    }
}

#[tokio::test]
async fn a_full_access_key_and_a_verified_single_sender_connect() {
    let (world, fake) = sendgrid_world();
    let seed = fake.seed();
    let connection = world.core.add_connection(sendgrid(&seed.full.key, "Alerts@Acme.example", None)).await.unwrap();
    assert_eq!(connection.status, ConnectionStatus::Connected);
    assert_eq!(connection.name, "Twilio SendGrid Alerts@Acme.example");
    assert_eq!(connection.fields["region"], FieldValue::Text("global".into()), "a choice left out is its first option");
    assert_eq!(connection.details["sender_status"], "verified Single Sender");
    assert_eq!(connection.details["account_type"], "paid");
    let pages: Vec<String> =
        fake.requests().into_iter().filter(|r| r.path == "/v3/verified_senders").map(|r| r.query).collect();
    assert_eq!(pages.len(), 2, "the sender is on the second page: {pages:?}");
    assert!(pages[1].contains("lastSeenID=700"), "paged by lastSeenID: {pages:?}");
    assert_eq!(world.vault_value(&format!("connection/{}", connection.id)), Some(seed.full.key.clone()));
}

#[tokio::test]
async fn senders_are_checked_when_the_key_may_read_them() {
    let (world, fake) = sendgrid_world();
    let seed = fake.seed();
    let err = world.core.add_connection(sendgrid(&seed.full.key, &seed.unverified_sender, None)).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("sendgrid_sender_unverified", Some("sender_email")));
    let err = world.core.add_connection(sendgrid(&seed.full.key, "someone@else.example", None)).await.unwrap_err();
    assert_eq!(err.code(), "sendgrid_sender_not_verified");

    // With an authenticated domain any address may be the sender.
    fake.set_domain_verified(true);
    let connection = world.core.add_connection(sendgrid(&seed.full.key, "someone@acme.example", None)).await.unwrap();
    assert!(connection.details["sender_status"].starts_with("authenticated domain"));

    // A Mail Send-only key cannot read senders nor the plan: it connects, and says so.
    let connection = world.core.add_connection(sendgrid(&seed.send_only.key, "x@acme.example", None)).await.unwrap();
    assert_eq!(connection.details["sender_status"], "not checked: the key may not read senders");
    assert!(!connection.details.contains_key("account_type"));
}

#[tokio::test]
async fn keys_that_cannot_send_or_are_of_the_other_region_are_refused_with_their_own_codes() {
    let (world, fake) = sendgrid_world();
    let seed = fake.seed();
    let err = world.core.add_connection(sendgrid(&seed.read_only.key, &seed.verified_sender, None)).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("sendgrid_cannot_send", Some("api_key")));

    let err = world.core.add_connection(sendgrid(&seed.eu.key, &seed.verified_sender, None)).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("sendgrid_auth_failed", Some("api_key")));
    assert!(err.to_string().contains("choose the EU region"), "{err}");
    assert_eq!(
        err.to_body().service_message.as_deref(),
        Some("The provided authorization grant is invalid, expired, or revoked")
    );
    assert!(!err.to_string().contains(&seed.eu.key));

    let eu = world.core.add_connection(sendgrid(&seed.eu.key, &seed.verified_sender, Some("EU"))).await.unwrap();
    assert_eq!(eu.fields["region"], FieldValue::Text("eu".into()));
    assert!(fake.requests().iter().any(|r| r.host == "eu"));

    let err =
        world.core.add_connection(sendgrid(&seed.full.key, &seed.verified_sender, Some("mars"))).await.unwrap_err();
    assert_eq!(err.field(), Some("region"));
    for bad_key in ["SG.short", "not-a-key"] {
        let err = world.core.add_connection(sendgrid(bad_key, &seed.verified_sender, None)).await.unwrap_err();
        assert_eq!((err.code(), err.field()), ("invalid_input", Some("api_key")));
    }
    let err = world.core.add_connection(sendgrid(&seed.full.key, "not an email", None)).await.unwrap_err();
    assert_eq!(err.field(), Some("sender_email"));
}

#[tokio::test]
async fn rate_limits_and_failures_are_retried_then_reported() {
    let (world, fake) = sendgrid_world();
    let seed = fake.seed();
    fake.inject(SendGridFault::RateLimited, 1);
    world.core.add_connection(sendgrid(&seed.full.key, &seed.verified_sender, None)).await.expect("a 429 is retried");
    fake.inject(SendGridFault::RateLimited, 3);
    let err = world.core.add_connection(sendgrid(&seed.full.key, &seed.verified_sender, None)).await.unwrap_err();
    assert_eq!(err.code(), "sendgrid_rate_limited");
    assert!(err.to_string().contains("UTC"), "the reset time, read from X-RateLimit-Reset: {err}");
    fake.inject(SendGridFault::Status(502), 3);
    let err = world.core.add_connection(sendgrid(&seed.full.key, &seed.verified_sender, None)).await.unwrap_err();
    assert_eq!(err.code(), "sendgrid_server_error");
}
