//! The exfiltration a probe found, end to end: an organization API caller (or a careless
//! script at the CLI) asks Patchbay to send a Twilio Auth Token asset to a URL of its
//! choosing. A fake HTTP service of the test's own stands for "anywhere": it must
//! receive nothing, whatever the answer says.

use patchbay_tests::fake_http::FakeHttp;
use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::harness::{Patchbay, Token, require_secret_service};
use patchbay_tests::serve::Server;
use reqwest::StatusCode;
use serde_json::json;

#[test]
fn a_twilio_asset_is_never_sent_to_a_url_of_the_callers_choosing() {
    require_secret_service();
    let fake = FakeTwilio::start();
    let anywhere = FakeHttp::start();
    let patchbay = Patchbay::new(&fake);
    let live = fake.seed().live;
    patchbay.run_with_stdin(&["--json", "asset", "create", "Twilio ops", "--folder", "Shared"], &live.auth_token).ok();
    let first = patchbay.add_twilio("Ops SMS", &live.phone_numbers[0], &live.sid, Token::Asset("Twilio ops"), false);
    assert_eq!(first.ok().json()["asset_first_use"], json!({ "connector": "twilio", "origin": null }));

    // Through the API, as the password of a Basic HTTP instance: refused, nothing sent.
    let server = Server::start_allowing(&patchbay, "loopback");
    let exfil = |username: serde_json::Value, password: serde_json::Value| {
        server.post(&json!({ "element": { "key": "http" }, "name": "Exfil", "configuration": {
            "authentication.type": "basic", "base_url": anywhere.base(), "test_path": "/basic/status",
            "username": username, "password": password } }))
    };
    let (status, refused) = exfil(json!("robot"), json!({ "asset": "Twilio ops" }));
    assert_eq!((status, refused["code"].as_str()), (StatusCode::FORBIDDEN, Some("asset_destination_refused")));
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("This API cannot allow it"), "{message}");
    assert!(!message.contains(&live.auth_token), "{message}");
    // As the username its value would be stored and shown: never a field's value.
    let (status, refused) = exfil(json!({ "asset": "Twilio ops" }), json!("x"));
    assert_eq!((status, refused["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("cannot be given as a credential asset"), "{refused}");

    // From the CLI: refused too, with how its owner allows it.
    let base = format!("base_url={}", anywhere.base());
    let add = ["--json", "connection", "add", "http", "--auth-method", "basic", "--folder", "Shared", "--field", &base];
    let add = [&add[..], &["--field", "test_path=/basic/status", "--field", "username=robot"]].concat();
    let refused = patchbay.run(&[&add[..], &["--secret-asset", "password=Twilio ops"]].concat());
    assert_eq!(refused.code(), "asset_destination_refused");
    assert!(refused.error()["message"].as_str().unwrap().contains("patchbay asset allow 'Twilio ops'"));
    assert!(anywhere.requests().is_empty(), "nothing reached the other service: {:?}", anywhere.requests());
    let listed = patchbay.run(&["--json", "asset", "list"]).ok().json();
    assert_eq!(listed[0]["destinations"], json!([{ "connector": "twilio", "origin": null }]));

    // Its owner allows that service: only then does the value go there.
    let to = format!("http:{}", anywhere.base());
    let allowed = patchbay.run(&["asset", "allow", "Twilio ops", "--folder", "Shared", "--to", &to]).ok().stdout;
    assert!(allowed.contains("may go to: HTTP at http://127.0.0.1"), "{allowed}");
    let sent = patchbay.run(&[&add[..], &["--secret-asset", "password=Twilio ops"]].concat());
    assert_eq!(sent.code(), "http_unauthorized", "the other service does not know this token");
    assert_eq!(anywhere.requests().len(), 1);
    // Allowed there or not, the API never copies it into a field it would show.
    let (status, _) = exfil(json!({ "asset": "Twilio ops" }), json!("x"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(anywhere.requests().len(), 1);
}
