//! `cargo bench -p patchbay-core`: the core's speed on a big store (10,000 folders,
//! 100,000 connections seeded by `fixtures::seed`) and Connect's own cost.
//!
//! Criterion measures the means; a percentile table for search follows, since the
//! target is a p95. Connect is measured against the fake Twilio on loopback with the
//! real OS vault when a Secret Service is reachable (tests/bench.sh provides one),
//! else with keyring-core's in-memory store, and says which.

use std::time::{Duration, Instant};

use std::hint::black_box;

use criterion::Criterion;
use patchbay_core::twilio::{Credentials, TwilioClient, verify};
use patchbay_core::{
    Config, ConnectionQuery, FieldValue, FieldValues, NewConnection, Patchbay, Secret, SecretSource, Vault, catalog,
    fixtures,
};
use patchbay_tests::fake_twilio::FakeTwilio;

const FOLDERS: usize = 10_000;
const CONNECTIONS: usize = 100_000;
const SEARCHES: [&str; 6] = ["0004217", "+15550081234", "customer 0420", "marketing 0999", "invoices", "zz-no-match"];

fn big_store() -> (tempfile::TempDir, Patchbay, fixtures::Seeded) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Some(dir.path().to_path_buf())).unwrap();
    let started = Instant::now();
    let seeded = fixtures::seed(&config.database_path(), FOLDERS, CONNECTIONS).unwrap();
    eprintln!("seeded {FOLDERS} folders and {CONNECTIONS} connections in {:.1?}", started.elapsed());
    let vault = Vault::with_store("patchbay-bench", keyring_core::mock::Store::new().unwrap(), config.vault_timeout);
    (dir, Patchbay::open_with_vault(config, vault).unwrap(), seeded)
}

fn store_benches(c: &mut Criterion, core: &Patchbay, seeded: &fixtures::Seeded) {
    let folder = seeded.folder_paths[4242].clone();
    c.bench_function("folder tree (10k folders)", |b| b.iter(|| black_box(core.list_folders().unwrap())));
    c.bench_function("folder page (first 100 connections)", |b| {
        let query = ConnectionQuery { folder: Some(folder.clone()), ..Default::default() };
        b.iter(|| black_box(core.list_connections(&query).unwrap()))
    });
    for needle in SEARCHES {
        c.bench_function(&format!("connection search {needle:?} (100k)"), |b| {
            let query = ConnectionQuery { search: Some(needle.into()), ..Default::default() };
            b.iter(|| black_box(core.list_connections(&query).unwrap()))
        });
    }
    c.bench_function("catalog search \"twi\"", |b| b.iter(|| black_box(catalog::search("twi"))));
}

fn percentiles(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{label:<44} p50 {:>9.3?}  p95 {:>9.3?}  max {:>9.3?}  (n={})",
        at(0.5),
        at(0.95),
        samples[samples.len() - 1],
        samples.len()
    );
}

fn search_percentiles(core: &Patchbay) {
    println!("\n== latency percentiles, {CONNECTIONS} connections ==");
    let mut all = Vec::new();
    for needle in SEARCHES {
        let query = ConnectionQuery { search: Some(needle.into()), ..Default::default() };
        let samples: Vec<Duration> = (0..300)
            .map(|_| {
                let started = Instant::now();
                black_box(core.list_connections(&query).unwrap());
                started.elapsed()
            })
            .collect();
        all.extend(samples.iter().copied());
        percentiles(&format!("search {needle:?}"), samples);
    }
    percentiles("search, all needles", all);
}

fn connect_cost() {
    let fake = FakeTwilio::start();
    let seed = fake.seed();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(Some(dir.path().to_path_buf())).unwrap();
    config.twilio.api_base = fake.api_base().into();
    config.twilio.accounts_base = fake.accounts_base().into();
    config.vault_service = format!("patchbay-bench-{}", patchbay_tests::fake_twilio::unique_suffix());
    let real_vault = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some();
    let vault = if real_vault {
        Vault::platform(config.vault_service.clone(), config.vault_timeout)
    } else {
        Vault::with_store(config.vault_service.clone(), keyring_core::mock::Store::new().unwrap(), config.vault_timeout)
    };
    let client = TwilioClient::new(config.twilio.clone());
    let core = Patchbay::open_with_vault(config, vault).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let token = Secret::new(seed.live.auth_token.clone());
    let phone = seed.live.phone_numbers[0].clone();

    let rounds = 200;
    let (mut connect, mut twilio_only) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for round in 0..rounds {
            let started = Instant::now();
            let credentials = Credentials::auth_token(&seed.live.sid, &token);
            verify(&client, credentials, Some(&phone), false).await.unwrap();
            twilio_only.push(started.elapsed());

            let new = NewConnection {
                folder: "Shared".into(),
                connector: "twilio".into(),
                auth_method: None,
                name: Some(format!("bench {round}")),
                values: FieldValues::from([
                    ("phone_number".into(), FieldValue::Text(phone.clone())),
                    ("account_sid".into(), FieldValue::Text(seed.live.sid.clone())),
                ]),
                secret: Some(SecretSource::Value(token.clone())),
            };
            let started = Instant::now();
            let connection = core.add_connection(new).await.unwrap();
            connect.push(started.elapsed());
            core.delete_connection(&connection.id).await.unwrap();
        }
    });
    let vault_kind = if real_vault { "Secret Service" } else { "in-memory vault: no Secret Service reachable" };
    println!("\n== Connect, {rounds} rounds against the fake Twilio on loopback ({vault_kind}) ==");
    percentiles("Twilio round trips alone (verify)", twilio_only.clone());
    percentiles("whole Connect (verify + checks + store + vault)", connect.clone());
    twilio_only.sort();
    connect.sort();
    let median = |v: &[Duration]| v[v.len() / 2];
    println!(
        "{:<44} {:.3?} (median difference)",
        "Connect's own cost",
        median(&connect).saturating_sub(median(&twilio_only))
    );
}

fn main() {
    let (_dir, core, seeded) = big_store();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    store_benches(&mut criterion, &core, &seeded);
    criterion.final_summary();
    search_percentiles(&core);
    connect_cost();
}
