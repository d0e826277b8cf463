//! `fake-services [TWILIO_API_ADDR TWILIO_ACCOUNTS_ADDR SLACK_ADDR]`: runs the fake Twilio,
//! Slack, SendGrid and a REST service for the HTTP connector until killed and prints their base URLs and seeded credentials as
//! one JSON line, for manual runs and for tests in other languages.

use patchbay_tests::fake_http::FakeHttp;
use patchbay_tests::fake_sendgrid::FakeSendGrid;
use patchbay_tests::fake_slack::FakeSlack;
use patchbay_tests::fake_twilio::FakeTwilio;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let address = |raw: &str| raw.parse().unwrap_or_else(|_| panic!("{raw} is not an address like 127.0.0.1:8081"));
    let (twilio, slack) = match args.as_slice() {
        [] => (FakeTwilio::start(), FakeSlack::start()),
        [api, accounts, slack] => {
            (FakeTwilio::start_on(address(api), address(accounts)), FakeSlack::start_on(address(slack)))
        }
        _ => {
            eprintln!("usage: fake-services [TWILIO_API_ADDR TWILIO_ACCOUNTS_ADDR SLACK_ADDR]");
            std::process::exit(2);
        }
    };
    let sendgrid = FakeSendGrid::start();
    let http = FakeHttp::start();
    let announcement = serde_json::json!({
        "api_base": twilio.api_base(),
        "accounts_base": twilio.accounts_base(),
        "seed": twilio.seed(),
        "slack": { "api_base": slack.api_base(), "seed": slack.seed() },
        "sendgrid": { "api_base": sendgrid.api_base(), "eu_api_base": sendgrid.eu_api_base(), "seed": sendgrid.seed() },
        "http": { "base": http.base(), "seed": http.seed() },
    });
    println!("{announcement}");
    loop {
        std::thread::park();
    }
}
