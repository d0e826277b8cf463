//! Twilio's edge cases as Twilio answers them, end to end: the real `patchbay` binary and
//! `patchbay serve`, the fake Twilio, the real Secret Service.

use std::time::{Duration, Instant};

use patchbay_tests::fake_twilio::{FakeTwilio, Fault};
use patchbay_tests::harness::{Patchbay, Token, require_secret_service};
use patchbay_tests::serve::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn setup() -> (FakeTwilio, Patchbay) {
    require_secret_service();
    let fake = FakeTwilio::start();
    let patchbay = Patchbay::new(&fake);
    (fake, patchbay)
}

fn twilio_error(status: u16, code: u32, message: &str) -> Fault {
    Fault::Error { status, code, message: message.into() }
}

#[test]
fn twilio_403_404_and_the_2024_from_codes_have_their_own_errors() {
    let (fake, patchbay) = setup();
    let seed = fake.seed();
    let (sid, token) = (seed.live.sid.as_str(), seed.live.auth_token.as_str());

    fake.inject_on(&format!("/2010-04-01/Accounts/{sid}.json"), twilio_error(403, 20403, "Forbidden"), 1);
    let error = patchbay.add_twilio("A", "+15551230001", sid, Token::Piped(token), false).error();
    assert_eq!(
        (error["code"].as_str(), error["twilio_message"].as_str()),
        (Some("twilio_forbidden"), Some("Forbidden"))
    );

    let mut elsewhere = Patchbay::new(&fake);
    elsewhere.set_env("PATCHBAY_TWILIO_API_BASE", fake.accounts_base());
    let error = elsewhere.add_twilio("B", "+15551230001", sid, Token::Piped(token), false).error();
    assert_eq!(error["code"], "twilio_account_not_found");
    assert!(error["message"].as_str().unwrap().contains("base URL"), "{error}");

    let messages = format!("/2010-04-01/Accounts/{}/Messages.json", seed.test.sid);
    for code in [21659, 21660, 21661] {
        fake.inject_on(&messages, twilio_error(400, code, "the newer From code"), 1);
        let run = patchbay.add_twilio("C", "+15005550006", &seed.test.sid, Token::Piped(&seed.test.auth_token), true);
        let error = run.error();
        assert_eq!(
            (error["code"].as_str(), error["twilio_code"].as_u64()),
            (Some("twilio_test_phone_invalid"), Some(u64::from(code)))
        );
    }
    assert_eq!(patchbay.run(&["--json", "connection", "list"]).ok().json()["total"], 0, "nothing failed was saved");
}

#[test]
fn test_credentials_send_to_a_valid_number_and_default_names_are_numbered() {
    let (fake, patchbay) = setup();
    let seed = fake.seed();
    let test = patchbay.add_twilio_unnamed("+15005550006", &seed.test.sid, &seed.test.auth_token, true).ok().json();
    let sent = fake.requests().into_iter().find(|r| r.path.ends_with("/Messages.json")).unwrap();
    let to = sent.form.iter().find(|(key, _)| key == "To").map(|(_, value)| value.clone()).unwrap();
    assert!(phonenumber::is_valid(&phonenumber::parse(None, &to).unwrap()), "{to} is a number Twilio takes");
    assert_eq!(test["name"], "Twilio +15005550006");

    let live = &seed.live;
    let first = patchbay.add_twilio_unnamed("+15551230001", &live.sid, &live.auth_token, false).ok().json();
    let second = patchbay.add_twilio_unnamed("+15551230001", &live.sid, &live.auth_token, false).ok().json();
    assert_eq!(
        (first["name"].as_str(), second["name"].as_str()),
        (Some("Twilio +15551230001"), Some("Twilio +15551230001 (2)"))
    );
}

#[test]
fn numbers_and_names_are_checked_before_anything_is_asked() {
    let (fake, patchbay) = setup();
    let live = &fake.seed().live;
    for (phone, says) in [("+99912345678", "country code"), ("+1555123000", "digits after the country code +1")] {
        let error = patchbay.add_twilio("X", phone, &live.sid, Token::Piped(&live.auth_token), false).error();
        assert_eq!((error["code"].as_str(), error["field"].as_str()), (Some("invalid_input"), Some("phone_number")));
        assert!(error["message"].as_str().unwrap().contains(says), "{error}");
    }
    assert!(fake.requests().is_empty(), "Twilio was never asked");
    let blank = patchbay.run(&["--json", "folder", "create", "Shared/   "]).error();
    assert_eq!(blank["message"], "the folder must not be blank");
}

#[test]
fn a_connection_without_a_number_is_account_level() {
    let (fake, patchbay) = setup();
    let live = &fake.seed().live;
    let args = [
        "--json",
        "connection",
        "add",
        "twilio",
        "--folder",
        "Shared",
        "--account-sid",
        &live.sid,
        "--auth-token-stdin",
    ];
    let made = patchbay.run_with_stdin(&args, &live.auth_token).ok().json();
    assert_eq!(
        (made["fields"]["phone_number"].clone(), made["name"].as_str()),
        (Value::Null, Some(format!("Twilio {}", live.sid).as_str()))
    );
    assert!(fake.requests().iter().all(|r| !r.path.ends_with("IncomingPhoneNumbers.json")), "no number to look up");
    let shown = patchbay.run(&["connection", "show", made["id"].as_str().unwrap()]).ok();
    assert!(shown.stdout.contains("every number of the account"), "{}", shown.stdout);
}

/// A callback that refuses every delivery, on this machine: events queue up visibly.
const NOWHERE: &str = "http://127.0.0.1:9/sms";

/// `serve` polling every 200 ms, allowed to call back to loopback.
fn events_server(patchbay: &mut Patchbay) -> Server {
    patchbay.set_env("PATCHBAY_EVENT_POLL_INTERVAL_MS", "200");
    patchbay.set_env("PATCHBAY_ALLOW_LOOPBACK_CALLBACKS", "1");
    Server::start(patchbay)
}

/// `GET /instances/{id}` until `done` holds (the event worker polls in the background).
fn wait_for_instance(server: &Server, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, instance) = server.get(&format!("/instances/{id}"));
        assert_eq!(status, StatusCode::OK);
        if done(&instance) {
            return instance;
        }
        assert!(Instant::now() < deadline, "never got there: {instance}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn events_show_a_failing_poll_refuse_test_credentials_and_forget_their_cursor_when_off() {
    let (fake, mut patchbay) = setup();
    let server = events_server(&mut patchbay);
    let seed = fake.seed();
    let events_on =
        |enabled: bool| json!({ "event.notification.enabled": enabled, "event.notification.callback.url": NOWHERE });

    let mut test = json!({
        "element": { "key": "twiliov2" }, "name": "Test events",
        "configuration": { "username": seed.test.sid, "password": seed.test.auth_token, "phone_number": "+15005550006",
                           "test_credentials": true }
    });
    test["configuration"].as_object_mut().unwrap().extend(events_on(true).as_object().unwrap().clone());
    let (status, refused) = server.post(&test);
    assert_eq!((status, refused["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("20008"));

    // Twilio fails every poll for a while: the instance says so, then recovers.
    let messages = format!("/2010-04-01/Accounts/{}/Messages.json", seed.live.sid);
    fake.inject_on(&messages, Fault::Status(503), 3);
    let mut live = json!({
        "element": { "key": "twiliov2" }, "name": "Inbox",
        "configuration": { "username": seed.live.sid, "password": seed.live.auth_token, "phone_number": "+15551230001" }
    });
    live["configuration"].as_object_mut().unwrap().extend(events_on(true).as_object().unwrap().clone());
    let (status, created) = server.post(&live);
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let failing = wait_for_instance(&server, &id, |i| i["eventPoller"]["lastError"]["code"] == "twilio_server_error");
    assert!(failing["eventPoller"]["lastError"]["message"].as_str().unwrap().contains("503"));
    wait_for_instance(&server, &id, |i| {
        i["eventPoller"]["lastPolledAt"].is_string() && i["eventPoller"].get("lastError").is_none()
    });

    // Off forgets where polling stood; on again starts from then.
    let patch = |body: Value| {
        let response = server.request(reqwest::Method::PATCH, &format!("/instances/{id}")).json(&body).send().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().unwrap()
    };
    let off = patch(json!({ "configuration": { "event.notification.enabled": "false" } }));
    assert!(off.get("eventPoller").is_none(), "no cursor while events are off: {off}");
    let on = patch(json!({ "configuration": { "event.notification.enabled": "true" } }));
    assert!(on["eventPoller"]["lastPolledAt"].is_null() || on["eventPoller"].get("lastPolledAt").is_none(), "{on}");
}

#[test]
fn an_account_level_instance_hears_every_number_of_the_account() {
    let (fake, mut patchbay) = setup();
    let server = events_server(&mut patchbay);
    let live = fake.seed().live;
    let (status, created) = server.post(&json!({
        "element": { "key": "twiliov2" }, "name": "Whole account",
        "configuration": { "username": live.sid, "password": live.auth_token,
                           "event.notification.enabled": "true", "event.notification.callback.url": NOWHERE }
    }));
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap();
    std::thread::sleep(Duration::from_millis(1100)); // Twilio's dates have whole seconds
    let sids: Vec<String> = live.phone_numbers[..2]
        .iter()
        .map(|number| fake.receive_message(&live.sid, "+15557654321", number, "hello"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, events) = server.get(&format!("/instances/{id}/events"));
        let mut seen: Vec<String> =
            events.as_array().unwrap().iter().map(|e| e["messageSid"].as_str().unwrap().to_owned()).collect();
        seen.sort();
        let mut expected = sids.clone();
        expected.sort();
        if seen == expected {
            break;
        }
        assert!(Instant::now() < deadline, "both numbers' messages become events: {events}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
