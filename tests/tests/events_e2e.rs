//! Events by polling, end to end: `patchbay serve` polls the fake Twilio for inbound
//! messages and POSTs each one, signed, to a callback server run by the test, exactly
//! once across a restart of `serve`, retrying a failing callback.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use patchbay_api::events::{SIGNATURE_HEADER, sign};
use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::harness::{Patchbay, require_secret_service};
use serde_json::{Value, json};

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
                        received.delivered.push((serde_json::from_str(&body).unwrap(), signature.clone()));
                        assert_eq!(signature, format!("sha256={}", sign("shared-secret", &body)), "a valid signature");
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
    let events: Value = http
        .get(format!("{}/instances/{id}/events", server.1))
        .header("Authorization", &auth)
        .send()
        .unwrap()
        .json()
        .unwrap();
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
    std::thread::sleep(Duration::from_millis(1000)); // a few more polls: anything repeated would arrive now
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
