//! What `serve`'s callers may make Patchbay reach: the real `patchbay serve` against a
//! loopback listener the test owns, which counts the connections it accepts. Without
//! `loopback` in `[serve] allow_destinations`, a credential store or an `http` instance
//! there is refused before any connection is made; with it, Patchbay connects.

use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::harness::{NOWHERE, Patchbay, require_secret_service};
use patchbay_tests::loopback::CountingListener;
use patchbay_tests::openbao::OpenBao;
use patchbay_tests::serve::{Server, send};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn add_store(server: &Server, name: &str, address: &str) -> (StatusCode, Value) {
    let body = json!({ "name": name, "address": address, "token": "probe-token" });
    send(server.request(reqwest::Method::POST, "/credential-stores").json(&body))
}

fn add_http_instance(server: &Server, name: &str, base_url: &str) -> (StatusCode, Value) {
    server.post(&json!({
        "element": { "key": "http" }, "name": name,
        "configuration": { "authentication.type": "api_key_header", "base_url": base_url, "test_path": "/status",
                           "header_name": "X-Probe", "api_key": "probe-key" }
    }))
}

/// This machine, as a caller might write it.
fn this_machine(port: u16) -> [String; 4] {
    [
        format!("http://127.0.0.1:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        format!("http://probe.localhost:{port}"),
        format!("http://localhost.:{port}"),
    ]
}

#[test]
fn serve_refuses_this_machine_to_its_callers_before_any_connection() {
    require_secret_service();
    let fake = FakeTwilio::start();
    let patchbay = Patchbay::new(&fake);
    let server = Server::start(&patchbay);
    let listener = CountingListener::start();
    for (n, address) in this_machine(listener.port).iter().enumerate() {
        for (status, error) in [
            add_store(&server, &format!("Probe {n}"), address),
            add_http_instance(&server, &format!("Probe {n}"), address),
        ] {
            assert_eq!((status, error["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")), "{address}");
            let message = error["message"].as_str().unwrap();
            assert!(
                message.contains("not allowed for this Patchbay's API (see [serve] allow_destinations)"),
                "{message}"
            );
        }
    }
    assert_eq!(listener.accepted(), 0, "nothing connected to the listener");
    assert_eq!(server.get("/credential-stores"), (StatusCode::OK, json!([])));
    assert_eq!(server.get("/instances"), (StatusCode::OK, json!([])));
}

#[test]
fn serve_reaches_this_machine_once_loopback_is_allowed_and_tells_no_failure_apart() {
    require_secret_service();
    let fake = FakeTwilio::start();
    let patchbay = Patchbay::new(&fake);
    let server = Server::start_allowing(&patchbay, "loopback");
    let listener = CountingListener::start();
    let base = format!("http://probe.localhost:{}", listener.port);

    let (status, created) = add_http_instance(&server, "Local REST", &base);
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(listener.accepted(), 1);
    // An empty 200 is no Vault: something answered, and the operator allowed asking it.
    let (_, error) = add_store(&server, "Local vault", &base);
    assert_eq!(error["code"], "store_unexpected_answer", "{error}");
    assert!(listener.accepted() >= 2);

    // A closed port reads the same as one that never answers: no connection, or no answer in time.
    for (_, error) in [add_store(&server, "Closed", NOWHERE), add_http_instance(&server, "Closed", NOWHERE)] {
        assert!(matches!(error["code"].as_str(), Some("store_unreachable" | "http_unreachable")), "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("no connection, or no answer in time"), "{message}");
        assert!(!message.contains("refused or failed"), "{message}");
    }
}

#[test]
fn a_store_its_owner_registered_at_the_desk_is_reached_by_serve_and_one_a_caller_gave_is_not() {
    require_secret_service();
    let fake = FakeTwilio::start();
    let patchbay = Patchbay::new(&fake);
    let bao = OpenBao::start();
    let live = fake.seed().live;
    bao.ok(&["kv", "put", "secret/twilio/prod", &format!("auth_token={}", live.auth_token)]);
    let add = ["--json", "store", "add", "Desk vault", "--address", &bao.address, "--token-stdin"];
    patchbay.run_with_stdin(&add, &bao.root_token).ok();
    let link = ["asset", "link", "Twilio prod", "--folder", "Shared", "--store", "Desk vault"];
    patchbay.run(&[&link[..], &["--path", "twilio/prod", "--key", "auth_token"]].concat()).ok();
    patchbay.run(&["asset", "allow", "Twilio prod", "--folder", "Shared", "--to", "twilio"]).ok();
    let instance = |name: &str| {
        json!({ "element": { "key": "twiliov2" }, "name": name, "folder": "Shared",
                "configuration": { "username": live.sid, "password": { "asset": "Twilio prod" },
                                   "phone_number": live.phone_numbers[0] } })
    };

    // serve as shipped (no loopback for its callers) still reaches the store its owner chose.
    let server = Server::start(&patchbay);
    let (status, created) = server.post(&instance("Through the desk's store"));
    assert_eq!(status, StatusCode::OK, "{created}");
    // A store a caller registers at the same address is held to serve's rule.
    let (status, refused) = add_store(&server, "Caller's vault", &bao.address);
    assert_eq!((status, refused["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")), "{refused}");
    drop(server);

    // Registered while its operator allowed loopback, it stays held to the rule when that ends.
    let allowing = Server::start_allowing(&patchbay, "loopback");
    let body = json!({ "name": "Caller's vault", "address": bao.address, "token": bao.root_token });
    let (status, added) = send(allowing.request(reqwest::Method::POST, "/credential-stores").json(&body));
    assert_eq!(status, StatusCode::OK, "{added}");
    drop(allowing);
    let server = Server::start(&patchbay);
    let (status, refused) = send(server.request(reqwest::Method::POST, "/credential-stores/Caller's%20vault/test"));
    assert_eq!((status, refused["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_input")), "{refused}");
}
