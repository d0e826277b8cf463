//! The fake Twilio checked against Twilio's own OpenAPI description (the subset kept in
//! `tests/specs/twilio/`): every answer it gives to a live request has a documented
//! status, and a body whose fields, types and enum values the spec declares. A fake that
//! drifts from Twilio would let Patchbay pass tests that real Twilio fails.

use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::openapi::{self, conforms, departures};
use reqwest::blocking::Client;
use serde_json::Value;

fn spec(file: &str) -> Value {
    openapi::load(&format!("twilio/{file}"))
}

#[test]
fn the_fakes_answers_are_those_the_openapi_spec_describes() {
    let fake = FakeTwilio::start();
    let seed = fake.seed();
    let (sid, token) = (&seed.live.sid, &seed.live.auth_token);
    let http = Client::new();
    let call = |method: reqwest::Method, url: String, form: &[(&str, &str)]| {
        let response = http.request(method, url).basic_auth(sid, Some(token)).form(form).send().unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    };
    fake.receive_message(sid, "+15557654321", &seed.live.phone_numbers[0], "hello");
    let api = spec("api_v2010.subset.json");
    let base = fake.api_base();
    let account = format!("{base}/2010-04-01/Accounts/{sid}");

    let (status, body) = call(reqwest::Method::GET, format!("{account}.json"), &[]);
    conforms(&api, "get", "/2010-04-01/Accounts/{Sid}.json", status, &body);
    // The check itself can fail: an undeclared field, a wrong type, a value off the enum.
    let schema =
        api.pointer("/paths/~12010-04-01~1Accounts~1{Sid}.json/get/responses/200/content/application~1json/schema");
    let mut drifted = body.clone();
    drifted["colour"] = "red".into();
    drifted["status"] = "sleeping".into();
    drifted["friendly_name"] = 7.into();
    assert_eq!(departures(&api, schema.unwrap(), &drifted, "$").len(), 3, "{drifted}");
    let (status, body) = call(reqwest::Method::GET, format!("{base}/2010-04-01/Accounts.json"), &[]);
    conforms(&api, "get", "/2010-04-01/Accounts.json", status, &body);
    let numbers = format!("{account}/IncomingPhoneNumbers.json?PhoneNumber=%2B15551230001");
    let (status, body) = call(reqwest::Method::GET, numbers, &[]);
    conforms(&api, "get", "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json", status, &body);
    let (status, body) = call(reqwest::Method::GET, format!("{account}/Messages.json"), &[]);
    conforms(&api, "get", "/2010-04-01/Accounts/{AccountSid}/Messages.json", status, &body);
    let message = body["messages"][0]["sid"].as_str().expect("the inbound message").to_owned();
    let (status, body) = call(reqwest::Method::GET, format!("{account}/Messages/{message}.json"), &[]);
    conforms(&api, "get", "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json", status, &body);

    let accounts = spec("accounts_v1.subset.json");
    let tokens = format!("{}/v1/AuthTokens", fake.accounts_base());
    let (status, body) = call(reqwest::Method::POST, format!("{tokens}/Secondary"), &[]);
    conforms(&accounts, "post", "/v1/AuthTokens/Secondary", status, &body);
    let (status, body) = call(reqwest::Method::POST, format!("{tokens}/Promote"), &[]);
    conforms(&accounts, "post", "/v1/AuthTokens/Promote", status, &body);
    let promoted = body["auth_token"].as_str().unwrap().to_owned();
    let deleted = http.post(format!("{tokens}/Secondary")).basic_auth(sid, Some(&promoted)).send().unwrap();
    assert_eq!(deleted.status().as_u16(), 201);
    let deleted = http.delete(format!("{tokens}/Secondary")).basic_auth(sid, Some(&promoted)).send().unwrap();
    conforms(&accounts, "delete", "/v1/AuthTokens/Secondary", deleted.status().as_u16(), &Value::Null);
}

#[test]
fn the_fake_refuses_a_to_that_is_no_valid_number_even_with_test_credentials() {
    let fake = FakeTwilio::start();
    let test = fake.seed().test;
    let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", fake.api_base(), test.sid);
    let send = |to: &str| {
        let form = [("From", "+15005550006"), ("To", to), ("Body", "hi")];
        Client::new().post(&url).basic_auth(&test.sid, Some(&test.auth_token)).form(&form).send().unwrap()
    };
    // Twilio's own documentation example, in the 555 exchange libphonenumber refuses.
    let refused = send("+15558675310");
    assert_eq!(refused.status().as_u16(), 400);
    assert_eq!(refused.json::<Value>().unwrap()["code"], 21211);
    assert_eq!(send("+12125550100").status().as_u16(), 201);
}

#[test]
fn the_fakes_errors_have_twilios_error_body() {
    let fake = FakeTwilio::start();
    let seed = fake.seed();
    let url = format!("{}/2010-04-01/Accounts/{}.json", fake.api_base(), seed.live.sid);
    let wrong = Client::new().get(&url).basic_auth(&seed.live.sid, Some("0".repeat(32))).send().unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let body: Value = wrong.json().unwrap();
    assert_eq!(body["code"], 20003);
    assert_eq!(body["status"], 401);
    assert!(
        body["message"].is_string()
            && body["more_info"].as_str().unwrap().starts_with("https://www.twilio.com/docs/errors/")
    );
}
