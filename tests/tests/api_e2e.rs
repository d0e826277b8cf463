//! `patchbay serve` as a real process: the provisioning API against the fake Twilio and
//! the real Secret Service.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use patchbay_tests::fake_twilio::{FakeTwilio, Fault};
use patchbay_tests::harness::{Patchbay, files_containing, require_secret_service};
use patchbay_tests::serve::{Server, send};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

fn instance(fake: &FakeTwilio, name: &str, phone: &str) -> Value {
    let seed = fake.seed();
    json!({
        "element": { "key": "twiliov2" }, "name": name, "folder": "Shared", "tags": ["sms"],
        "configuration": { "username": seed.live.sid, "password": seed.live.auth_token, "phone_number": phone,
                           "test_credentials": false, "event.notification.enabled": false, "filter.response.nulls": true }
    })
}

fn setup() -> (FakeTwilio, Patchbay, Server) {
    require_secret_service();
    let fake = FakeTwilio::start();
    let patchbay = Patchbay::new(&fake);
    let server = Server::start(&patchbay);
    (fake, patchbay, server)
}

#[test]
fn platform_auth_is_required_and_checked() {
    let (_fake, _patchbay, server) = setup();
    let anonymous = send(server.http.get(format!("{}/instances", server.base)));
    assert_eq!(anonymous.0, StatusCode::UNAUTHORIZED);
    assert!(anonymous.1["requestId"].is_string());
    let wrong = send(
        server
            .http
            .get(format!("{}/instances", server.base))
            .header("Authorization", format!("User {}, Organization nope", server.user)),
    );
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(server.get("/instances"), (StatusCode::OK, json!([])));
}

#[test]
fn post_instances_validates_like_connect_and_returns_the_token_once() {
    let (fake, patchbay, server) = setup();
    let seed = fake.seed();
    let (status, created) = server.post(&instance(&fake, "Finance SMS", "+15551230001"));
    assert_eq!(status, StatusCode::OK, "{created}");
    let token = created["token"].as_str().expect("the instance token").to_owned();
    assert_eq!(created["configuration"]["password"], "********");
    assert_eq!(created["configuration"]["username"], seed.live.sid.as_str());
    assert_eq!((created["valid"].clone(), created["disabled"].clone()), (json!(true), json!(false)));
    assert_eq!(created["element"], json!({"key": "twiliov2", "name": "Twilio"}));
    assert!(created["configuration"].get("event.notification.callback.url").is_none(), "nulls filtered by default");
    assert!(!created.to_string().contains(&seed.live.auth_token));
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, fetched) = server.get(&format!("/instances/{id}"));
    assert_eq!(status, StatusCode::OK);
    assert!(fetched.get("token").is_none(), "the token is returned once");

    // The instance token opens that instance, and only it.
    let element = format!("User {}, Element {token}", server.user);
    let own = send(server.http.get(format!("{}/instances/{id}", server.base)).header("Authorization", &element));
    assert_eq!(own.0, StatusCode::OK);
    let all = send(server.http.get(format!("{}/instances", server.base)).header("Authorization", &element));
    assert_eq!(all.0, StatusCode::UNAUTHORIZED);
    let bad = send(
        server
            .http
            .get(format!("{}/instances/{id}", server.base))
            .header("Authorization", format!("User {}, Element x", server.user)),
    );
    assert_eq!(bad.0, StatusCode::UNAUTHORIZED);

    // The same connection, seen by the CLI; its secret in the vault.
    let listed = patchbay.run(&["--json", "connection", "list"]).ok().json();
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert_eq!(patchbay.vault_entries().iter().filter(|e| e.starts_with("connection/")).count(), 1);
    // Every file of the data folder: in WAL mode the row may still be in the -wal file.
    assert!(
        files_containing(patchbay.data_dir.path(), token.as_bytes()).is_empty(),
        "only a hash of the token is stored"
    );
    assert!(files_containing(patchbay.data_dir.path(), seed.live.auth_token.as_bytes()).is_empty());
}

#[test]
fn every_status_code_and_message() {
    let (fake, _patchbay, server) = setup();
    let seed = fake.seed();
    let mut missing = instance(&fake, "x", "+15551230001");
    missing["configuration"] = json!({ "password": "x" });
    let (status, body) = server.post(&missing);
    assert_eq!(
        (status, body["message"].as_str().unwrap()),
        (StatusCode::BAD_REQUEST, "missing required configuration: username")
    );

    let mut unknown_element = instance(&fake, "x", "+15551230001");
    unknown_element["element"]["key"] = json!("salesforce");
    let (status, body) = server.post(&unknown_element);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("known keys: http, slack, twiliov2, sendgrid"), "{body}");

    let mut extra = instance(&fake, "x", "+15551230001");
    extra["colour"] = json!("red");
    let (status, body) = server.post(&extra);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("unknown field `colour`"));

    let (status, body) = server.post(&instance(&fake, "x", "+15551230009"));
    assert_eq!((status, body["code"].as_str().unwrap()), (StatusCode::BAD_REQUEST, "twilio_phone_not_in_account"));

    let mut wrong_token = instance(&fake, "x", "+15551230001");
    wrong_token["configuration"]["password"] = json!("0".repeat(32));
    let (status, body) = server.post(&wrong_token);
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("twilio_auth_failed")));
    assert_eq!(body["providerMessage"], "Authenticate", "Twilio's words for an auth failure too");

    let mut test_phone = instance(&fake, "x", "+15005550001");
    test_phone["configuration"]["username"] = json!(seed.test.sid);
    test_phone["configuration"]["password"] = json!(seed.test.auth_token);
    test_phone["configuration"]["test_credentials"] = json!(true);
    let (status, body) = server.post(&test_phone);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["providerMessage"].as_str().unwrap().contains("not a valid phone number"), "{body}");

    fake.inject(Fault::Status(503), 3);
    let (status, body) = server.post(&instance(&fake, "x", "+15551230001"));
    assert_eq!((status, body["code"].as_str().unwrap()), (StatusCode::BAD_GATEWAY, "twilio_server_error"));

    assert_eq!(server.post(&instance(&fake, "Dup", "+15551230001")).0, StatusCode::OK);
    let (status, body) = server.post(&instance(&fake, "dup", "+15551230001"));
    assert_eq!((status, body["code"].as_str().unwrap()), (StatusCode::CONFLICT, "name_taken"));

    assert_eq!(server.get("/instances/no-such-id").0, StatusCode::NOT_FOUND);

    let mut events = instance(&fake, "y", "+15551230001");
    events["configuration"]["event.vendor.type"] = json!("webhook");
    let (status, body) = server.post(&events);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("cannot call back into a desktop"));

    let huge = "x".repeat(patchbay_api::MAX_BODY_BYTES + 1);
    let (status, _) =
        send(server.request(reqwest::Method::POST, "/instances").body(huge).header("content-type", "application/json"));
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn nulls_filters_and_listing() {
    let (fake, _patchbay, server) = setup();
    let mut keep_nulls = instance(&fake, "Keeps nulls", "+15551230001");
    keep_nulls["configuration"]["filter.response.nulls"] = json!(false);
    keep_nulls["tags"] = json!(["sms", "alerts"]);
    let (_, shown) = server.post(&keep_nulls);
    assert!(shown["configuration"]["event.notification.callback.url"].is_null());
    assert!(shown["configuration"].get("event.notification.callback.url").is_some(), "nulls kept on request");

    let created = server.request(reqwest::Method::POST, "/folders").send().unwrap().status();
    assert_eq!(created, StatusCode::NOT_FOUND);
    let mut elsewhere = instance(&fake, "Elsewhere", "+15551230002");
    elsewhere["folder"] = json!("Shared");
    elsewhere["tags"] = json!([]);
    server.post(&elsewhere);

    let names = |path: &str| -> Vec<String> {
        server.get(path).1.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names("/instances"), ["Elsewhere", "Keeps nulls"]);
    assert_eq!(names("/instances?tags=alerts"), ["Keeps nulls"]);
    assert_eq!(names("/instances?tags=sms,alerts"), ["Keeps nulls"]);
    assert_eq!(names("/instances?element=twiliov2&folder=Shared"), ["Elsewhere", "Keeps nulls"]);
    assert_eq!(names("/instances?element=slack"), Vec::<String>::new());
}

#[test]
fn put_revalidates_only_when_credentials_change_and_delete_cleans_up() {
    let (fake, patchbay, server) = setup();
    let (_, created) = server.post(&instance(&fake, "Finance SMS", "+15551230001"));
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/instances/{id}");

    let mut renamed = instance(&fake, "Finance alerts", "+15551230001");
    renamed["configuration"].as_object_mut().unwrap().remove("password");
    renamed["tags"] = json!(["alerts"]);
    let before = fake.requests().len();
    let (status, body) = send(server.request(reqwest::Method::PUT, &path).json(&renamed));
    assert_eq!((status, body["name"].as_str().unwrap()), (StatusCode::OK, "Finance alerts"));
    assert_eq!(body["tags"], json!(["alerts"]));
    assert_eq!(fake.requests().len(), before, "a rename asks Twilio nothing");

    let mut wrong = renamed.clone();
    wrong["configuration"]["password"] = json!("0".repeat(32));
    let (status, body) = send(server.request(reqwest::Method::PUT, &path).json(&wrong));
    assert_eq!((status, body["code"].as_str().unwrap()), (StatusCode::BAD_REQUEST, "twilio_auth_failed"));

    let mut moved_phone = renamed.clone();
    moved_phone["configuration"]["phone_number"] = json!("+15551230002");
    let before_phone_change = fake.requests().len();
    let (status, body) = send(server.request(reqwest::Method::PUT, &path).json(&moved_phone));
    assert_eq!((status, body["configuration"]["phone_number"].as_str().unwrap()), (StatusCode::OK, "+15551230002"));
    let number_lookups = fake.requests()[before_phone_change..]
        .iter()
        .filter(|request| {
            request.path.ends_with("/IncomingPhoneNumbers.json") && request.query.contains("%2B15551230002")
        })
        .count();
    assert_eq!(number_lookups, 1, "the changed number is looked up in the account");

    let (status, _) = send(server.request(reqwest::Method::DELETE, &path));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.get(&path).0, StatusCode::NOT_FOUND);
    assert_eq!(patchbay.vault_entries().iter().filter(|e| e.starts_with("connection/")).count(), 0);
}

#[test]
fn fifty_concurrent_posts_are_all_stored() {
    let (fake, patchbay, server) = setup();
    std::thread::scope(|scope| {
        for n in 0..50 {
            let (fake, server) = (&fake, &server);
            scope.spawn(move || {
                let (status, body) = server.post(&instance(fake, &format!("Line {n:02}"), "+15551230001"));
                assert_eq!(status, StatusCode::OK, "{body}");
            });
        }
    });
    assert_eq!(server.get("/instances").1.as_array().unwrap().len(), 50);
    assert_eq!(patchbay.run(&["--json", "connection", "list"]).ok().json()["total"], 50);
}

#[test]
fn serve_writes_no_core_dump() {
    let (_fake, _patchbay, server) = setup();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    let core = limits.lines().find(|line| line.starts_with("Max core file size")).unwrap();
    assert_eq!(core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(), ["0", "0"], "{core}");
}

#[test]
fn serve_refuses_the_network_without_tls_and_stops_on_sigterm() {
    let (_fake, patchbay, server) = setup();
    let refused = patchbay.run(&["--json", "serve", "--listen", "0.0.0.0:0"]);
    assert!(refused.error()["message"].as_str().unwrap().contains("not a loopback address"));

    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut child = server;
    let status = child.child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn credentials_rotate_in_a_running_serve_and_the_old_ones_stop_working() {
    let (_fake, patchbay, server) = setup();
    assert_eq!(server.get("/instances").0, StatusCode::OK);
    let rotated = patchbay.run(&["--json", "api", "credentials", "--rotate"]).ok().json();
    let new = format!(
        "User {}, Organization {}",
        rotated["user"].as_str().unwrap(),
        rotated["organization"].as_str().unwrap()
    );
    assert_ne!(new, server.auth);
    let with = |auth: &str| send(server.http.get(format!("{}/instances", server.base)).header("Authorization", auth)).0;
    assert_eq!(with(&new), StatusCode::OK, "the new secrets work at once, no restart");
    // The old ones stop working within the few seconds serve keeps secrets it has read.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while with(&server.auth) != StatusCode::UNAUTHORIZED {
        assert!(std::time::Instant::now() < deadline, "the old secrets still work");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(with(&new), StatusCode::OK);
}

#[test]
fn a_remote_address_is_served_over_tls_only() {
    let (_fake, patchbay, server) = setup();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let no_tls = patchbay.run(&["--json", "serve", "--listen", "0.0.0.0:0", "--allow-remote"]);
    assert_eq!(no_tls.code, Some(2), "clap requires the TLS material with --allow-remote");

    let mut child = patchbay
        .command(&[
            "--json",
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--allow-remote",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let port = serde_json::from_str::<Value>(&first).unwrap()["listening"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let https = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    // Only this machine is ever contacted: the wildcard listener is reached through loopback.
    let (status, body) =
        send(https.get(format!("https://localhost:{port}/instances")).header("Authorization", &server.auth));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((status, body), (StatusCode::OK, json!([])));
}

#[test]
fn username_and_password_may_come_from_credential_assets() {
    let (fake, patchbay, server) = setup();
    let seed = fake.seed();
    patchbay.run_with_stdin(&["--json", "asset", "create", "Twilio SID", "--folder", "Shared"], &seed.live.sid).ok();
    patchbay
        .run_with_stdin(&["--json", "asset", "create", "Twilio token", "--folder", "Shared"], &seed.live.auth_token)
        .ok();
    let mut body = instance(&fake, "By assets", "+15551230001");
    body["configuration"]["username"] = json!({"asset": "Twilio SID"});
    body["configuration"]["password"] = json!({"asset": "Twilio token"});
    // Assets nobody has used yet go nowhere for an API caller, until their owner says where.
    let (status, refused) = server.post(&body);
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("asset_destination_refused")),
        "{refused}"
    );
    for asset in ["Twilio SID", "Twilio token"] {
        patchbay.run(&["asset", "allow", asset, "--folder", "Shared", "--to", "twilio"]).ok();
    }
    let (status, created) = server.post(&body);
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["configuration"]["username"], seed.live.sid.as_str());
    assert_eq!(created["configuration"]["password"], json!({"asset": "Twilio token"}));

    body["name"] = json!("Not a SID");
    body["configuration"]["username"] = json!({"asset": "Twilio token"});
    let (status, error) = server.post(&body);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["message"].as_str().unwrap().contains("does not hold a valid Account SID"), "{error}");
    assert!(!error.to_string().contains(&seed.live.auth_token), "the asset's value is never echoed");
}

#[test]
fn callbacks_to_internal_addresses_are_refused_before_any_connection() {
    let (fake, _patchbay, server) = setup();
    // Each is refused when provisioned: no packet ever leaves for these addresses.
    for (callback, says) in [
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://10.0.0.8/hook", "private"),
        ("https://192.168.1.20/hook", "private"),
        ("http://127.0.0.1:9/hook", "loopback"),
        ("https://localhost:9/hook", "loopback"),
        ("http://hooks.example.com/hook", "https"),
    ] {
        let mut body = instance(&fake, "Hooked", "+15551230001");
        body["configuration"]["event.notification.enabled"] = json!(true);
        body["configuration"]["event.notification.callback.url"] = json!(callback);
        let (status, error) = server.post(&body);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{callback}: {error}");
        assert_eq!(error["code"], "invalid_input");
        assert!(error["message"].as_str().unwrap().contains(says), "{callback}: {error}");
    }
    assert_eq!(server.get("/instances"), (StatusCode::OK, json!([])), "nothing was provisioned");
}

#[test]
fn an_instance_token_uses_its_instance_but_cannot_repoint_it() {
    let (fake, patchbay, server) = setup();
    let seed = fake.seed();
    patchbay
        .run_with_stdin(&["--json", "asset", "create", "other token", "--folder", "Shared"], &seed.live.auth_token)
        .ok();
    let (_, created) = server.post(&instance(&fake, "Robot SMS", "+15551230001"));
    let (id, token) = (created["id"].as_str().unwrap().to_owned(), created["token"].as_str().unwrap().to_owned());
    let path = format!("/instances/{id}");
    let as_element = |method: reqwest::Method, body: &Value| {
        send(
            server
                .http
                .request(method, format!("{}{path}", server.base))
                .header("Authorization", format!("User {}, Element {token}", server.user))
                .json(body),
        )
    };
    assert_eq!(as_element(reqwest::Method::GET, &Value::Null).0, StatusCode::OK);

    let mut same = instance(&fake, "Robot SMS (renamed)", "+15551230001");
    same["configuration"].as_object_mut().unwrap().remove("password");
    let (status, renamed) = as_element(reqwest::Method::PUT, &same);
    assert_eq!((status, renamed["name"].as_str()), (StatusCode::OK, Some("Robot SMS (renamed)")));

    let mut repointed = same.clone();
    repointed["configuration"]["password"] = json!({"asset": "other token"});
    let mut new_callback = same.clone();
    new_callback["configuration"]["event.notification.enabled"] = json!(true);
    new_callback["configuration"]["event.notification.callback.url"] = json!("https://attacker.example/sms");
    let mut new_number = same.clone();
    new_number["configuration"]["phone_number"] = json!("+15551230002");
    let mut asset_probe = same.clone();
    asset_probe["configuration"]["username"] = json!({"asset": "does it exist"});
    for attempt in [repointed, new_callback, new_number, asset_probe] {
        let (status, error) = as_element(reqwest::Method::PUT, &attempt);
        assert_eq!((status, error["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{error}");
        assert!(!error["message"].as_str().unwrap().contains("asset"), "no asset name is confirmed or denied");
    }
    let (_, unchanged) = server.get(&path);
    assert_eq!(unchanged["configuration"]["password"], "********");
    assert_eq!(unchanged["configuration"]["phone_number"], "+15551230001");
}

#[test]
fn every_refusal_has_the_api_error_body() {
    let (_fake, _patchbay, server) = setup();
    let shaped = |(status, body): (StatusCode, Value), expected: StatusCode, code: &str| {
        assert_eq!(status, expected, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        assert!(body["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
    };
    shaped(
        send(server.request(reqwest::Method::PATCH, "/instances")),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    shaped(
        send(server.request(reqwest::Method::POST, "/instances").body(vec![b'x'; patchbay_api::MAX_BODY_BYTES + 1])),
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    shaped(server.get("/nowhere"), StatusCode::NOT_FOUND, "not_found");
    shaped(server.get("/instances?colour=red"), StatusCode::BAD_REQUEST, "invalid_input");
    // A page elsewhere that got a browser to send its requests here (DNS rebinding)
    // carries its own name in Host.
    let port = server.base.rsplit_once(':').unwrap().1;
    shaped(
        send(server.request(reqwest::Method::GET, "/instances").header("Host", format!("rebind.example:{port}"))),
        StatusCode::MISDIRECTED_REQUEST,
        "wrong_host",
    );
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        assert_eq!(send(server.request(reqwest::Method::GET, "/instances").header("Host", host)).0, StatusCode::OK);
    }
}

#[test]
fn slow_clients_are_cut_off_and_cannot_hold_the_api() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    require_secret_service();
    let fake = FakeTwilio::start();
    let mut patchbay = Patchbay::new(&fake);
    patchbay.set_env("PATCHBAY_SERVE_HEADER_READ_TIMEOUT_MS", "700");
    patchbay.set_env("PATCHBAY_SERVE_BODY_READ_TIMEOUT_MS", "700");
    let server = Server::start(&patchbay);
    let address = server.base.trim_start_matches("http://").to_owned();
    // Hundreds of clients that start a request and never finish it: headers half sent,
    // or a body that never comes.
    let slow: Vec<TcpStream> = (0..400)
        .map(|n| {
            let mut stream = TcpStream::connect(&address).expect("the API accepts the connection");
            let start: &[u8] = if n % 4 == 0 {
                b"POST /instances HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n{\"elem"
            } else {
                b"GET /instances HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
            };
            stream.write_all(start).unwrap();
            stream
        })
        .collect();

    let quick = Client::builder().timeout(std::time::Duration::from_secs(1)).build().unwrap();
    let answer = quick.get(format!("{}/instances", server.base)).header("Authorization", &server.auth).send();
    assert_eq!(answer.expect("a normal request is answered within a second").status(), StatusCode::OK);

    // Past the timeouts, every slow connection has been closed by the server.
    std::thread::sleep(std::time::Duration::from_millis(2000));
    for mut stream in slow {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        // EOF (perhaps after a 408 answer) or a reset: either way, closed.
        let closed = match stream.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "a slow connection was left open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_vault_answers_503_and_holds_up_nothing_else() {
    use patchbay_tests::locked_vault::PromptingStore;
    let fake = FakeTwilio::start();
    let seed = fake.seed();
    let dir = tempfile::tempdir().unwrap();
    let mut config = patchbay_core::Config::load(Some(dir.path().to_path_buf())).unwrap();
    config.twilio.api_base = fake.api_base().into();
    config.twilio.accounts_base = fake.accounts_base().into();
    config.vault_timeout = std::time::Duration::from_millis(500);
    let (store, prompt) = PromptingStore::with_prompt();
    let vault = patchbay_core::Vault::with_store("patchbay-api-locked", store, config.vault_timeout);
    let core = patchbay_core::Patchbay::open_with_vault(patchbay_api::served(config), vault).unwrap();
    let core = std::sync::Arc::new(core);
    let credentials = core.api_credentials(false).await.unwrap();
    let auth = format!(
        "User {}, Organization {}",
        credentials.user.reveal_to_owner(),
        credentials.organization.reveal_to_owner()
    );
    let (listening, address) = tokio::sync::oneshot::channel();
    let options = patchbay_api::ServeOptions { listen: "127.0.0.1:0".parse().unwrap(), allow_remote: false, tls: None };
    let server = tokio::spawn(patchbay_api::serve(core, options, move |address| {
        let _ = listening.send(address);
    }));
    let base = format!("http://{}", address.await.unwrap());
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build().unwrap();

    // The keyring locks, and its unlock prompt waits for someone who is not there.
    prompt.lock();
    let body = json!({
        "element": {"key": "twiliov2"}, "name": "Locked", "configuration": {
            "username": seed.live.sid, "password": seed.live.auth_token, "phone_number": seed.live.phone_numbers[0] }
    });
    let post = http.post(format!("{base}/instances")).header("Authorization", &auth).json(&body).send();
    let list = http.get(format!("{base}/instances")).header("Authorization", &auth).send();
    let (post, list) = tokio::join!(post, list);
    assert_eq!(list.unwrap().status(), StatusCode::OK, "an unrelated request is answered");
    let post = post.expect("the POST is answered, not held");
    assert_eq!(post.status(), StatusCode::SERVICE_UNAVAILABLE);
    let error: Value = post.json().await.unwrap();
    assert_eq!(error["code"], "vault_locked");
    assert!(error["message"].as_str().unwrap().contains("unlock"), "{error}");

    prompt.unlock();
    let listed: Value = http
        .get(format!("{base}/instances"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "nothing half-provisioned");
    server.abort();
}

#[test]
fn a_cloud_elements_client_provisions_unchanged() {
    // As Cloud Elements' churros provisioner sends it: every value a string, "" for not
    // set, the poller's configuration as a JSON string, and all three Authorization parts.
    let (fake, _patchbay, server) = setup();
    let seed = fake.seed();
    let body = json!({
        "element": { "key": "twiliov2" }, "name": "churros-instance",
        "configuration": {
            "username": seed.live.sid, "password": seed.live.auth_token, "phone_number": "+15551230001",
            "test_credentials": "false", "filter.response.nulls": "true",
            "event.vendor.type": "polling", "event.notification.enabled": "false",
            "event.poller.refresh_interval": "1", "event.notification.signature.key": "",
            "event.notification.callback.url": "",
            "event.poller.configuration": "{\"messages\":{\"url\":\"/hubs/messaging/messages\",\"idField\":\"sid\"}}",
            "event.poller.urls": "messages"
        }
    });
    let (status, created) = server.post(&body);
    assert_eq!(status, StatusCode::OK, "{created}");
    let configuration = &created["configuration"];
    assert_eq!(configuration["event.poller.refresh_interval"], 1);
    assert_eq!(configuration["test_credentials"], false);
    assert_eq!(configuration["event.poller.configuration"]["messages"]["idField"], "sid", "kept as JSON");
    assert_eq!(configuration["event.poller.urls"], "messages");
    assert!(configuration.get("event.notification.signature.key").is_none(), "\"\" is not a key");

    let (id, token) = (created["id"].as_str().unwrap(), created["token"].as_str().unwrap());
    let all_three = format!("{}, Element {token}", server.auth);
    let (status, fetched) =
        send(server.http.get(format!("{}/instances/{id}", server.base)).header("Authorization", all_three.clone()));
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched["configuration"]["event.poller.urls"], "messages");
    let listed = send(server.http.get(format!("{}/instances", server.base)).header("Authorization", all_three));
    assert_eq!(listed.0, StatusCode::OK);

    let mut bad = body.clone();
    bad["configuration"]["event.notification.enabled"] = json!("yes");
    assert_eq!(server.post(&bad).0, StatusCode::BAD_REQUEST, "only \"true\" and \"false\" are booleans");
}

#[test]
fn instances_page_the_way_connector_platforms_page() {
    let (fake, _patchbay, server) = setup();
    for n in 0..5 {
        assert_eq!(server.post(&instance(&fake, &format!("Line {n}"), "+15551230001")).0, StatusCode::OK);
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/instances?pageSize=2".to_owned();
        if let Some(token) = &next {
            path.push_str(&format!("&nextPage={token}"));
        }
        let response = server.request(reqwest::Method::GET, &path).send().unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        next = response.headers().get("Elements-Next-Page-Token").map(|v| v.to_str().unwrap().to_owned());
        let page: Value = response.json().unwrap();
        seen.extend(page.as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()));
        pages += 1;
        if next.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["Line 0", "Line 1", "Line 2", "Line 3", "Line 4"], "every instance once, by name");
    assert_eq!(server.get("/instances?pageSize=0").0, StatusCode::BAD_REQUEST);
    assert_eq!(server.get("/instances?nextPage=bogus").0, StatusCode::BAD_REQUEST);
}

#[test]
fn patch_changes_only_what_it_sends() {
    let (fake, _patchbay, server) = setup();
    let (_, created) = server.post(&instance(&fake, "Finance SMS", "+15551230001"));
    let (id, token) = (created["id"].as_str().unwrap().to_owned(), created["token"].as_str().unwrap().to_owned());
    let path = format!("/instances/{id}");
    let patch = |auth: &str, body: Value| {
        send(server.http.patch(format!("{}{path}", server.base)).header("Authorization", auth).json(&body))
    };

    let before = fake.requests().len();
    let (status, renamed) = patch(&server.auth, json!({ "name": "Finance alerts" }));
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Finance alerts");
    assert_eq!(renamed["tags"], json!(["sms"]), "tags kept");
    assert_eq!(renamed["configuration"]["phone_number"], "+15551230001");
    assert_eq!(fake.requests().len(), before, "nothing for Twilio to check");

    let (status, tuned) = patch(&server.auth, json!({ "configuration": { "event.poller.refresh_interval": "5" } }));
    assert_eq!(status, StatusCode::OK, "{tuned}");
    assert_eq!(
        (tuned["configuration"]["event.poller.refresh_interval"].clone(), tuned["name"].clone()),
        (json!(5), json!("Finance alerts"))
    );

    let element = format!("User {}, Element {token}", server.user);
    assert_eq!(patch(&element, json!({ "tags": ["robots"] })).0, StatusCode::OK);
    let (status, refused) = patch(&element, json!({ "configuration": { "phone_number": "+15551230002" } }));
    assert_eq!((status, refused["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));

    let (status, moved) = patch(&server.auth, json!({ "configuration": { "phone_number": "+15551230002" } }));
    assert_eq!((status, moved["configuration"]["phone_number"].as_str()), (StatusCode::OK, Some("+15551230002")));
    assert_eq!(patch(&server.auth, json!({ "colour": "red" })).0, StatusCode::BAD_REQUEST);
}

#[test]
fn username_and_password_are_all_twiliov2_needs() {
    // As Cloud Elements' twiliov2: no phone_number makes an account-level instance.
    let (fake, _patchbay, server) = setup();
    let seed = fake.seed();
    let body = json!({
        "element": { "key": "twiliov2" }, "name": "Whole account",
        "configuration": { "username": seed.live.sid, "password": seed.live.auth_token }
    });
    let (status, created) = server.post(&body);
    assert_eq!(status, StatusCode::OK, "{created}");
    assert!(created["configuration"].get("phone_number").is_none(), "{created}");
    let mut with_nulls = body.clone();
    with_nulls["name"] = json!("Whole account, nulls shown");
    with_nulls["configuration"]["filter.response.nulls"] = json!(false);
    let (_, shown) = server.post(&with_nulls);
    assert_eq!(shown["configuration"]["phone_number"], Value::Null);
}
