//! The fake SendGrid checked against SendGrid's OpenAPI subset (`tests/specs/sendgrid/`)
//! and the facts of `../shared/sendgrid/README.md`: documented statuses and bodies, the
//! error body, `406` without `Accept`, rate-limit headers, and a key on its own host only.

use patchbay_tests::fake_sendgrid::{FakeSendGrid, SendGridFault};
use patchbay_tests::openapi::{self, conforms};
use reqwest::blocking::Client;
use serde_json::Value;

fn get(base: &str, path: &str, key: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .header("Accept", "application/json")
        .send()
        .unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.json().unwrap())
}

#[test]
fn every_answer_is_one_the_spec_describes() {
    let fake = FakeSendGrid::start();
    let spec = openapi::load("sendgrid/sendgrid.subset.json");
    let seed = fake.seed();
    let base = fake.api_base();
    for (path, key, status) in [
        ("/v3/scopes", &seed.full.key, 200),
        ("/v3/verified_senders", &seed.full.key, 200),
        ("/v3/verified_senders?limit=5&lastSeenID=14", &seed.full.key, 200),
        ("/v3/verified_senders/steps_completed", &seed.full.key, 200),
        ("/v3/user/account", &seed.full.key, 200),
        ("/v3/scopes", &"SG.unknown".to_owned(), 401),
        ("/v3/verified_senders", &seed.send_only.key, 403),
        ("/v3/verified_senders/steps_completed", &seed.send_only.key, 403),
    ] {
        let (answered, headers, body) = get(base, path, key);
        assert_eq!(answered, status, "{path}: {body}");
        let template = path.split('?').next().unwrap();
        conforms(&spec, "get", template, status, &body);
        for header in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"] {
            assert!(headers.contains_key(header), "{path}: {header} on every answer");
        }
    }
    let (_, _, page) = get(base, "/v3/verified_senders?limit=5&lastSeenID=14", &seed.full.key);
    let ids: Vec<i64> = page["results"].as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [21, 28, 35, 42, 49], "limit and lastSeenID page by id");
}

#[test]
fn the_fake_refuses_what_sendgrid_refuses() {
    let fake = FakeSendGrid::start();
    let seed = fake.seed();
    // By hand: HTTP clients add an Accept header of their own.
    let host = fake.api_base().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&host).unwrap();
    let request = format!(
        "GET /v3/scopes HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        seed.full.key
    );
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 406"), "no Accept header: {answer}");
    let (status, _, body) = get(fake.eu_api_base(), "/v3/scopes", &seed.full.key);
    assert_eq!(status, 401, "a global key is unknown on the EU host: {body}");
    assert!(body["errors"][0]["message"].is_string());
    let (status, _, _) = get(fake.eu_api_base(), "/v3/scopes", &seed.eu.key);
    assert_eq!(status, 200);
    fake.inject(SendGridFault::RateLimited, 1);
    let (status, headers, body) = get(fake.api_base(), "/v3/scopes", &seed.full.key);
    assert_eq!((status, body["errors"][0]["message"].as_str()), (429, Some("too many requests")));
    assert!(headers.get("retry-after").is_none(), "SendGrid documents no Retry-After");
}
