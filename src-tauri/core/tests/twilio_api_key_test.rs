//! Twilio by API key: a Main key reads the Account, a Standard key may not (Twilio answers
//! 20003, as for a wrong secret), so Connect tells the cases apart by what a Standard key
//! may read. Against the fake Twilio, which treats keys as `shared/twilio/api-keys.md` says.

mod common;

use common::{TwilioFields, World};
use patchbay_core::{ConnectionStatus, FieldValue, FieldValues, NewConnection, Secret, SecretSource};
use patchbay_tests::fake_twilio::{CredentialKind, SeedKey};

fn api_key(world: &World, account_sid: &str, key: &SeedKey, phone: Option<&str>) -> NewConnection {
    let mut values = FieldValues::from([
        ("account_sid".into(), FieldValue::Text(account_sid.into())),
        ("api_key_sid".into(), FieldValue::Text(key.sid.clone())),
    ]);
    values.extend(phone.map(|phone| ("phone_number".to_owned(), FieldValue::Text(phone.into()))));
    let _ = world;
    NewConnection {
        folder: "Shared".into(),
        connector: "twilio".into(),
        auth_method: Some("api_key".into()),
        name: None,
        values,
        secret: Some(SecretSource::Value(Secret::new(key.secret.clone()))),
    }
}

#[tokio::test]
async fn a_main_key_reads_the_account_and_a_standard_key_the_numbers() {
    let world = World::new();
    let seed = world.fake.seed();
    let phone = seed.live.phone_numbers[0].as_str();

    let main =
        world.core.add_connection(api_key(&world, &seed.live.sid, &seed.api_keys.main, Some(phone))).await.unwrap();
    assert_eq!(main.status, ConnectionStatus::Connected);
    assert_eq!(main.auth_method, "api_key");
    assert_eq!((main.account_name(), main.details["api_key_type"].as_str()), (Some("Acme Operations"), "Main"));
    assert_eq!(main.phone(), Some(phone));

    let standard =
        world.core.add_connection(api_key(&world, &seed.live.sid, &seed.api_keys.standard, Some(phone))).await.unwrap();
    assert_eq!(standard.details["api_key_type"], "Standard");
    assert_eq!(standard.account_name(), None, "a Standard key may not read the Account");
    assert_eq!(world.vault_value(&format!("connection/{}", standard.id)), Some(seed.api_keys.standard.secret.clone()));
    let requests = world.fake.requests();
    assert!(requests.iter().all(|r| r.method == "GET"), "a key is checked by reading only");
    assert!(requests.iter().all(|r| r.credential != CredentialKind::Test));
    assert!(requests.iter().all(|r| r.api_key_sid.is_some()), "every request authenticated with the key");

    // No Test Credentials toggle for keys, and no rotation: that is the Auth Token's.
    let mut toggled = api_key(&world, &seed.live.sid, &seed.api_keys.main, None);
    toggled.values.insert("test_credentials".into(), FieldValue::Toggle(true));
    assert!(world.core.add_connection(toggled).await.unwrap_err().to_string().contains("no field 'test_credentials'"));
    let subject = patchbay_core::rotation::RotationSubject::Connection { id: main.id.clone() };
    assert_eq!(world.core.plan_rotation(&subject).await.unwrap_err().code(), "invalid_input");
}

#[tokio::test]
async fn wrong_keys_keys_of_another_account_and_numbers_elsewhere_are_told_apart() {
    let world = World::new();
    let seed = world.fake.seed();
    let live = seed.live.sid.as_str();

    let wrong_secret = SeedKey { sid: seed.api_keys.standard.sid.clone(), secret: "not-the-secret".into() };
    let err = world.core.add_connection(api_key(&world, live, &wrong_secret, None)).await.unwrap_err();
    assert_eq!(
        (err.code(), err.field(), err.twilio_code()),
        ("twilio_api_key_rejected", Some("api_key_secret"), Some(20003))
    );
    assert!(
        err.to_string().contains("deleted") && err.to_string().contains("another account or another Twilio region")
    );
    assert!(!err.to_string().contains("not-the-secret"));

    // A Main key of the trial account names its own account.
    let err =
        world.core.add_connection(api_key(&world, live, &seed.api_keys.other_account_main, None)).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("twilio_api_key_other_account", Some("account_sid")));
    assert!(err.to_string().contains(&seed.trial.sid) && err.to_string().contains("Acme Trial"), "{err}");

    // A Standard key of another account reads nothing of this one: Twilio cannot say more.
    let err = world
        .core
        .add_connection(api_key(&world, live, &seed.api_keys.other_account_standard, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "twilio_api_key_rejected");

    // A good Standard key, a number of another account.
    let elsewhere = seed.trial.phone_numbers[0].as_str();
    let err =
        world.core.add_connection(api_key(&world, live, &seed.api_keys.standard, Some(elsewhere))).await.unwrap_err();
    assert_eq!((err.code(), err.field()), ("twilio_phone_not_in_account", Some("phone_number")));

    // The key SID has its documented shape; the secret's length is not documented, so not checked.
    let mut short = api_key(&world, live, &seed.api_keys.main, None);
    short.values.insert("api_key_sid".into(), FieldValue::Text("SK123".into()));
    assert_eq!(world.core.add_connection(short).await.unwrap_err().field(), Some("api_key_sid"));
    let odd_secret = SeedKey { sid: seed.api_keys.main.sid.clone(), secret: "x".into() };
    assert_eq!(
        world.core.add_connection(api_key(&world, live, &odd_secret, None)).await.unwrap_err().code(),
        "twilio_api_key_rejected",
        "a one-character secret is sent to Twilio, which refuses it"
    );
    assert_eq!(world.core.list_connections(&Default::default()).unwrap().total, 0);
}

#[tokio::test]
async fn a_key_in_a_credential_asset_reaches_test_connection_and_edit_keeps_the_method() {
    let world = World::new();
    let seed = world.fake.seed();
    world
        .core
        .create_asset("Shared", "Twilio key", Secret::new(seed.api_keys.standard.secret.clone()), None)
        .await
        .unwrap();
    let mut new = api_key(&world, &seed.live.sid, &seed.api_keys.standard, None);
    new.secret = Some(SecretSource::Asset("Twilio key".into()));
    let connection = world.core.add_connection(new).await.unwrap();
    assert_eq!(world.core.test_connection(&connection.id).await.unwrap().status, ConnectionStatus::Connected);

    let changes = patchbay_core::ConnectionChanges {
        name: "Alerts".into(),
        auth_method: Some("auth_token".into()),
        values: connection.fields.clone(),
        secret: None,
    };
    let err = world.core.update_connection(&connection.id, changes).await.unwrap_err();
    assert_eq!(err.field(), Some("auth_method"));
}
