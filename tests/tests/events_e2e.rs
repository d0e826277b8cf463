//! Events by polling, end to end: `patchbay serve` polls the fake Twilio for inbound
//! messages and POSTs each one, signed, to a callback server run by the test, exactly
//! once across a restart of `serve`, retrying a failing callback.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use patchbay_api::events::SIGNATURE_HEADER;
use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::harness::{Patchbay, require_secret_service};
use serde_json::{Value, json};
use sha2::Sha256;

/// Checks `sha256=<hex>` over `body` the way a receiver would, with its own HMAC.
fn signature_valid(key: &str, body: &str, header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else { return false };
    let Ok(expected) = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|byte| u8::from_str_radix(byte, 16).ok()).ok_or(()))
        .collect::<Result<Vec<u8>, ()>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// What the callback received: (body, signature) in order; it fails the first `fail` calls.
#[derive(Default)]
struct Received {
    fail: usize,
    calls: usize,
    delivered: Vec<(Value, String)>,
}

fn callback_server(fail: usize) -> (String, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received { fail, ..Default::default() }));
    let shared = received.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
            let app = axum::Router::new().route(
                "/events",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let shared = shared.clone();
                    async move {
                        let mut received = shared.lock().unwrap();
                        received.calls += 1;
                        if received.calls <= received.fail {
                            return StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        let signature =
                            headers.get(SIGNATURE_HEADER).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                        assert!(signature_valid("shared-secret", &body, &signature), "a valid signature: {signature}");
                        assert!(
                            !signature_valid("shared-secret", &format!("{body} "), &signature),
                            "bound to the body"
                        );
                        received.delivered.push((serde_json::from_str(&body).unwrap(), signature.clone()));
                        StatusCode::NO_CONTENT
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (format!("http://{}/events", rx.recv().unwrap()), received)
}

struct Serve(std::process::Child, String);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(patchbay: &Patchbay) -> Serve {
    let mut child =
        patchbay.command(&["--json", "serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let address = serde_json::from_str::<Value>(&first).unwrap()["listening"].as_str().unwrap().to_owned();
    Serve(child, format!("http://{address}"))
}

/// `GET /instances/{id}/events`.
fn events_of(http: &reqwest::blocking::Client, server: &Serve, id: &str, auth: &str) -> Value {
    let url = format!("{}/instances/{id}/events", server.1);
    http.get(url).header("Authorization", auth).send().unwrap().json().unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn inbound_messages_are_delivered_once_across_a_restart() {
    require_secret_service();
    let fake = FakeTwilio::start();
    let seed = fake.seed();
    let number = seed.live.phone_numbers[0].clone();
    let mut patchbay = Patchbay::new(&fake);
    patchbay.set_env("PATCHBAY_EVENT_POLL_INTERVAL_MS", "200");
    // The test's receiver listens on loopback, which callbacks may reach only when allowed.
    patchbay.set_env("PATCHBAY_ALLOW_LOOPBACK_CALLBACKS", "1");
    let credentials = patchbay.run(&["--json", "api", "credentials"]).ok().json();
    let auth = format!(
        "User {}, Organization {}",
        credentials["user"].as_str().unwrap(),
        credentials["organization"].as_str().unwrap()
    );
    let (callback, received) = callback_server(2);

    // Before events are enabled: not an event.
    fake.receive_message(&seed.live.sid, "+15557654321", &number, "too early");
    std::thread::sleep(Duration::from_millis(1100));

    let server = serve(&patchbay);
    let http = reqwest::blocking::Client::new();
    let created: Value = http
        .post(format!("{}/instances", server.1))
        .header("Authorization", &auth)
        .json(&json!({
            "element": {"key": "twiliov2"}, "name": "Inbox",
            "configuration": {
                "username": seed.live.sid, "password": seed.live.auth_token, "phone_number": number,
                "event.notification.enabled": true, "event.notification.callback.url": callback,
                "event.notification.signature.key": "shared-secret", "event.poller.refresh_interval": 1
            }
        }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = created["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    assert_eq!(created["configuration"]["event.notification.signature.key"], "********");

    let mut sids: Vec<String> =
        (1..=3).map(|n| fake.receive_message(&seed.live.sid, "+15557654321", &number, &format!("hello {n}"))).collect();
    fake.receive_message(&seed.live.sid, "+15557654321", &seed.live.phone_numbers[1], "another number");
    wait_for("three events", || received.lock().unwrap().delivered.len() >= 3);

    // The failures are visible, then retried with backoff until delivered.
    let events = events_of(&http, &server, &id, &auth);
    let states: HashMap<&str, (&str, u64)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["messageSid"].as_str().unwrap(), (e["state"].as_str().unwrap(), e["attempts"].as_u64().unwrap())))
        .collect();
    assert_eq!(states.len(), 3);
    assert!(states.values().all(|(state, _)| *state == "delivered"));
    assert!(states.values().any(|(_, attempts)| *attempts > 1), "the failed deliveries were retried: {events}");

    // Restart: nothing repeated, nothing lost.
    drop(server);
    sids.push(fake.receive_message(&seed.live.sid, "+15557654321", &number, "while serve was down"));
    let server = serve(&patchbay);
    wait_for("the fourth event", || received.lock().unwrap().delivered.len() >= 4);
    // Nothing is left to retry, and two more polls have found nothing new: anything
    // that would be repeated would have been queued and sent by now.
    let polls = || fake.requests().iter().filter(|r| r.path.ends_with("/Messages.json") && r.method == "GET").count();
    wait_for("every event delivered", || {
        events_of(&http, &server, &id, &auth).as_array().unwrap().iter().all(|event| event["state"] == "delivered")
    });
    let polled = polls();
    wait_for("two more polls", || polls() >= polled + 2);

    // Signing fails closed: with the key gone from the vault, the next event is held
    // back with the reason, never posted unsigned.
    let key_user = format!("event-key/{id}");
    assert!(patchbay.vault_secret(&key_user).is_some());
    let cleared = std::process::Command::new("secret-tool")
        .args(["clear", "service", &patchbay.vault_service, "username", &key_user])
        .status()
        .unwrap();
    assert!(cleared.success());
    let unsigned = fake.receive_message(&seed.live.sid, "+15557654321", &number, "after the key is gone");
    wait_for("the unsigned event to be held back", || {
        events_of(&http, &server, &id, &auth).as_array().unwrap().iter().any(|event| {
            event["messageSid"] == unsigned.as_str()
                && event["state"] == "pending"
                && event["lastError"].as_str().is_some_and(|error| error.contains("vault_secret_missing"))
        })
    });
    drop(server);

    let received = received.lock().unwrap();
    let delivered: Vec<&str> =
        received.delivered.iter().map(|(event, _)| event["messageSid"].as_str().unwrap()).collect();
    let mut expected: Vec<&str> = sids.iter().map(String::as_str).collect();
    let mut got = delivered.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "each inbound message exactly once");
    let first = &received.delivered[0].0;
    assert_eq!(first["eventType"], "message.received");
    assert_eq!(first["instanceId"], id.as_str());
    assert_eq!((first["from"].as_str(), first["to"].as_str()), (Some("+15557654321"), Some(number.as_str())));
}
