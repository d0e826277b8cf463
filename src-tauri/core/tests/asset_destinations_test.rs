//! A credential asset's value goes only where it may: where its first use sent it, or
//! where its owner allowed it. Anything else is refused before any connection, and the
//! service that would have received it sees nothing. A second fake HTTP service stands
//! for "anywhere".

mod common;

use common::World;
use patchbay_core::destination::{Policy, Reach};
use patchbay_core::rotation::RotationSubject;
use patchbay_core::{ConnectionChanges, Destination, FieldValue, FieldValues, NewConnection, Secret, SecretSource};
use patchbay_tests::fake_http::FakeHttp;

fn bearer(base: &str, asset: &str) -> NewConnection {
    NewConnection {
        folder: "Shared".into(),
        connector: "http".into(),
        auth_method: Some("bearer".into()),
        name: None,
        values: values(base),
        secret: Some(SecretSource::Asset(asset.into())),
    }
}

fn values(base: &str) -> FieldValues {
    FieldValues::from([
        ("base_url".into(), FieldValue::Text(base.into())),
        ("test_path".into(), FieldValue::Text("/bearer/status".into())),
    ])
}

/// `http://127.0.0.1:port` of a fake's `http://127.0.0.1:port/api`.
fn origin(base: &str) -> String {
    base.splitn(4, '/').take(3).collect::<Vec<_>>().join("/")
}

fn http_to(base: &str) -> Destination {
    Destination { connector: "http".into(), origin: Some(origin(base)) }
}

#[tokio::test]
async fn an_asset_goes_where_its_first_use_sent_it_and_nowhere_else() {
    let world = World::new();
    let service = FakeHttp::start();
    let elsewhere = FakeHttp::start();
    let token = service.seed().token;
    world.core.create_asset("Shared", "API token", Secret::new(token), None).await.unwrap();
    let fresh = world.core.list_assets(Some("Shared")).unwrap();
    assert!(fresh[0].destinations.is_empty(), "nothing decided before its first use");

    let first = world.core.add_connection(bearer(service.base(), "API token")).await.unwrap();
    assert_eq!(first.asset_first_use, Some(http_to(service.base())), "the answer says the first use decided");
    assert_eq!(world.core.list_assets(Some("Shared")).unwrap()[0].destinations, [http_to(service.base())]);
    let again = world.core.add_connection(bearer(&format!("{}/", service.base()), "API token")).await.unwrap();
    assert_eq!(again.asset_first_use, None, "the same origin, written differently, is no new destination");

    let refused = world.core.add_connection(bearer(elsewhere.base(), "API token")).await.unwrap_err();
    assert_eq!(refused.code(), "asset_destination_refused", "{refused}");
    let message = refused.to_string();
    assert!(
        message.contains("patchbay asset allow 'API token' --folder 'Shared' --to http:http://127.0.0.1"),
        "{message}"
    );
    assert!(message.contains(&format!("it may go to HTTP at {}", origin(service.base()))), "{message}");

    // Edit keeps the asset but points the connection elsewhere: refused as well.
    let moved = ConnectionChanges {
        name: first.name.clone(),
        auth_method: None,
        values: values(elsewhere.base()),
        secret: None,
    };
    let refused = world.core.update_connection(&first.id, moved).await.unwrap_err();
    assert_eq!(refused.code(), "asset_destination_refused", "{refused}");
    assert!(elsewhere.requests().is_empty(), "the other service received nothing: {:?}", elsewhere.requests());

    // Its owner allows the other origin: from then on it may go there too.
    let to = format!("http:{}", elsewhere.base());
    let allowed = world.core.set_asset_destination("Shared", "API token", &to, true).unwrap();
    assert_eq!(allowed.destinations.len(), 2);
    let outcome = world.core.add_connection(bearer(elsewhere.base(), "API token")).await;
    assert_eq!(outcome.unwrap_err().code(), "http_unauthorized", "the other service does not know this token");
    assert_eq!(elsewhere.requests().len(), 1, "sent once allowed");

    // Taken away again: a saved connection's Test is refused before anything is sent.
    let sent = service.requests().len();
    let service_to = format!("http:{}", service.base());
    world.core.set_asset_destination("Shared", "API token", &service_to, false).unwrap();
    let refused = world.core.test_connection(&first.id).await.unwrap_err();
    assert_eq!(refused.code(), "asset_destination_refused", "{refused}");
    assert_eq!(service.requests().len(), sent);
}

#[tokio::test]
async fn serve_callers_use_an_asset_only_where_it_is_allowed_and_cannot_widen_that() {
    // `serve` on a machine whose operator lets its callers reach this machine's services.
    let world = World::with(|config| {
        config.reach = Reach::Served;
        config.serve_destinations = Policy::parse(["loopback"]).unwrap();
    });
    let service = FakeHttp::start();
    world.core.create_asset("Shared", "API token", Secret::new(service.seed().token), None).await.unwrap();

    // No first use decides for an API caller, and allowing is not theirs to do.
    let refused = world.core.add_connection(bearer(service.base(), "API token")).await.unwrap_err();
    assert_eq!(refused.code(), "asset_destination_refused");
    assert!(refused.to_string().contains("This API cannot allow it"), "{refused}");
    let to = format!("http:{}", service.base());
    let refused = world.core.set_asset_destination("Shared", "API token", &to, true).unwrap_err();
    assert_eq!(refused.field(), Some("destination"));
    assert!(service.requests().is_empty());

    // Once its owner allowed it (at their desk), the API may use it there.
    let desk = world.reopen_with(|config| config.reach = Reach::Desk);
    desk.set_asset_destination("Shared", "API token", &to, true).unwrap();
    let connected = world.core.add_connection(bearer(service.base(), "API token")).await.unwrap();
    assert_eq!(connected.asset_first_use, None);
}

#[test]
fn destinations_are_written_as_a_connector_or_an_http_origin() {
    let twilio = Destination::parse(" twilio ").unwrap();
    assert_eq!((twilio.connector.as_str(), twilio.origin), ("twilio", None));
    let http = Destination::parse("http:https://API.example.com:443/v1/").unwrap();
    assert_eq!(http.origin.as_deref(), Some("https://api.example.com"), "compared as origins are");
    for (bad, field) in [
        ("http", "destination"),
        ("twilio:https://x.example", "destination"),
        ("nope", "connector"),
        ("http:not a url", "destination"),
    ] {
        let refused = Destination::parse(bad).unwrap_err();
        assert_eq!((refused.code(), refused.field()), ("invalid_input", Some(field)), "{bad}: {refused}");
    }
}

#[tokio::test]
async fn a_destination_taken_away_stops_every_use_of_the_asset_there() {
    let world = World::new();
    let seed = world.fake.seed();
    world.core.create_asset("Shared", "Twilio token", Secret::new(seed.live.auth_token.clone()), None).await.unwrap();
    let mut through_asset = world.live("+15551230001");
    through_asset.secret = Some(SecretSource::Asset("Twilio token".into()));
    let connection = world.core.add_connection(through_asset).await.unwrap();
    world.core.set_asset_destination("Shared", "Twilio token", "twilio", false).unwrap();

    let asked = world.fake.requests().len();
    let rotate = RotationSubject::Asset { folder: "Shared".into(), name: "Twilio token".into(), write_linked: false };
    assert_eq!(world.core.plan_rotation(&rotate).await.unwrap_err().code(), "asset_destination_refused");
    assert_eq!(world.core.test_connection(&connection.id).await.unwrap_err().code(), "asset_destination_refused");
    assert_eq!(world.fake.requests().len(), asked, "Twilio was asked nothing");
}

#[tokio::test]
async fn serve_callers_cannot_move_a_connections_own_secret_to_another_address() {
    let world = World::with(|config| {
        config.reach = Reach::Served;
        config.serve_destinations = Policy::parse(["loopback"]).unwrap();
    });
    let service = FakeHttp::start();
    let elsewhere = FakeHttp::start();
    // Made by a person at the desk, with its own token.
    let desk = world.reopen_with(|config| config.reach = Reach::Desk);
    let mut own = bearer(service.base(), "unused");
    own.secret = Some(SecretSource::Value(Secret::new(service.seed().token)));
    let made = desk.add_connection(own).await.unwrap();

    let moved = ConnectionChanges {
        name: made.name.clone(),
        auth_method: None,
        values: values(elsewhere.base()),
        secret: None,
    };
    let refused = world.core.update_connection(&made.id, moved).await.unwrap_err();
    assert_eq!(refused.field(), Some("base_url"), "{refused}");
    assert!(elsewhere.requests().is_empty(), "the token went nowhere: {:?}", elsewhere.requests());
    // The same address, secret kept: as before.
    let same =
        ConnectionChanges { name: "Renamed".into(), auth_method: None, values: values(service.base()), secret: None };
    assert_eq!(world.core.update_connection(&made.id, same).await.unwrap().name, "Renamed");
}
