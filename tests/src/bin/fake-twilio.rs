//! `fake-twilio [API_ADDR ACCOUNTS_ADDR]`: runs the fake Twilio until killed and prints
//! its base URLs and seeded credentials as one JSON line, for manual runs and for
//! tests in other languages.

use patchbay_tests::fake_twilio::FakeTwilio;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fake = match args.as_slice() {
        [] => FakeTwilio::start(),
        [api, accounts] => FakeTwilio::start_on(
            api.parse().expect("API_ADDR like 127.0.0.1:8081"),
            accounts.parse().expect("ACCOUNTS_ADDR like 127.0.0.1:8082"),
        ),
        _ => {
            eprintln!("usage: fake-twilio [API_ADDR ACCOUNTS_ADDR]");
            std::process::exit(2);
        }
    };
    let announcement = serde_json::json!({
        "api_base": fake.api_base(),
        "accounts_base": fake.accounts_base(),
        "seed": fake.seed(),
    });
    println!("{announcement}");
    loop {
        std::thread::park();
    }
}
