//! The window, the CLI and `patchbay serve` side by side on one data folder, as README
//! promises: real processes, the real Secret Service, one SQLite file. Whatever ran at
//! the same time (and whatever was killed with SIGKILL midway), afterwards every command
//! that succeeded has its row, every row has its secret, no secret is left without its
//! row, and no command failed with a store error.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use patchbay_core::{Config, FieldValue, FieldValues, NewConnection, Secret, SecretSource};
use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::harness::{Patchbay, Run, Token, require_secret_service};
use patchbay_tests::serve::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// What one actor did, and whether it said it succeeded.
#[derive(Debug)]
enum Outcome {
    ConnectionAdded(String),
    AssetCreated(String),
    ConnectionDeleted(String),
    Failed(String),
}

fn outcome_of(run: Run, made: impl Fn(&Value) -> Outcome) -> Outcome {
    if run.code == Some(0) {
        made(&run.json())
    } else {
        Outcome::Failed(format!("{} {}", run.code(), run.stderr.trim()))
    }
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// The window's half: the same core calls its commands make, in this process.
fn window(config: Config, phone: String, sid: String, token: String) -> Vec<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let core = patchbay_core::Patchbay::open(config).expect("the window opens the shared data folder");
        let mut done = Vec::new();
        for round in 0..3 {
            let new = NewConnection {
                folder: "Shared".into(),
                connector: "twilio".into(),
                auth_method: None,
                name: Some(format!("window {round}")),
                values: FieldValues::from([
                    ("phone_number".into(), FieldValue::Text(phone.clone())),
                    ("account_sid".into(), FieldValue::Text(sid.clone())),
                ]),
                secret: Some(SecretSource::Value(Secret::new(token.clone()))),
            };
            done.push(match core.add_connection(new).await {
                Ok(connection) => Outcome::ConnectionAdded(connection.id),
                Err(err) => Outcome::Failed(format!("{} {err}", err.code())),
            });
            done.push(
                match core.create_asset("Shared", &format!("window asset {round}"), Secret::new("value"), None).await {
                    Ok(asset) => Outcome::AssetCreated(asset.id),
                    Err(err) => Outcome::Failed(format!("{} {err}", err.code())),
                },
            );
        }
        done
    })
}

#[test]
fn the_window_the_cli_and_serve_share_a_data_folder_without_losing_a_row() {
    require_secret_service();
    let fake = FakeTwilio::start();
    let patchbay = Patchbay::new(&fake);
    let seed = fake.seed();
    let (sid, token, phone) = (seed.live.sid.clone(), seed.live.auth_token.clone(), seed.live.phone_numbers[0].clone());
    let add = |name: &str| patchbay.add_twilio(name, &phone, &sid, Token::Piped(&token), false);
    let doomed: Vec<String> = (0..4).map(|n| id(&add(&format!("doomed {n}")).ok().json())).collect();
    let server = Server::start(&patchbay);

    let mut config = Config::load(Some(patchbay.data_dir.path().to_path_buf())).unwrap();
    config.twilio.api_base = fake.api_base().into();
    config.twilio.accounts_base = fake.accounts_base().into();
    config.vault_service = patchbay.vault_service.clone();

    let outcomes: Vec<Outcome> = thread::scope(|scope| {
        let mut actors = Vec::new();
        for n in 0..10 {
            let add = &add;
            actors.push(scope.spawn(move || {
                vec![outcome_of(add(&format!("cli {n}")), |value| Outcome::ConnectionAdded(id(value)))]
            }));
        }
        for n in 0..10 {
            let patchbay = &patchbay;
            actors.push(scope.spawn(move || {
                let run = patchbay.run_with_stdin(
                    &["--json", "asset", "create", &format!("asset {n}"), "--folder", "Shared"],
                    "asset value",
                );
                vec![outcome_of(run, |value| Outcome::AssetCreated(id(value)))]
            }));
        }
        for doomed in &doomed {
            let patchbay = &patchbay;
            actors.push(scope.spawn(move || {
                let run = patchbay.run(&["--json", "connection", "delete", doomed]);
                vec![outcome_of(run, |_| Outcome::ConnectionDeleted(doomed.clone()))]
            }));
        }
        for n in 0..6 {
            let (server, fake) = (&server, &fake);
            actors.push(scope.spawn(move || {
                let seed = fake.seed();
                let (status, body) = server.post(&json!({
                    "element": { "key": "twiliov2" }, "name": format!("api {n}"), "folder": "Shared",
                    "configuration": { "username": seed.live.sid, "password": seed.live.auth_token,
                                       "phone_number": seed.live.phone_numbers[0] }
                }));
                vec![match status {
                    StatusCode::OK => Outcome::ConnectionAdded(id(&body)),
                    _ => Outcome::Failed(format!("{status} {body}")),
                }]
            }));
        }
        let window_config = config.clone();
        let (window_phone, window_sid, window_token) = (phone.clone(), sid.clone(), token.clone());
        actors.push(scope.spawn(move || window(window_config, window_phone, window_sid, window_token)));
        // Processes killed at every point of their work: their changes may or may not
        // have happened, but must never be half-done once someone opens the folder.
        for n in 0..6 {
            let patchbay = &patchbay;
            let (phone, sid, token) = (&phone, &sid, &token);
            scope.spawn(move || {
                let mut command = patchbay.command(&[
                    "--json",
                    "connection",
                    "add",
                    "twilio",
                    "--folder",
                    "Shared",
                    "--name",
                    &format!("killed {n}"),
                    "--phone",
                    phone,
                    "--account-sid",
                    sid,
                    "--auth-token-stdin",
                ]);
                let mut child =
                    command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
                use std::io::Write;
                child.stdin.take().unwrap().write_all(token.as_bytes()).unwrap();
                thread::sleep(Duration::from_millis(15 * n));
                let _ = child.kill();
                let _ = child.wait();
            });
        }
        actors.into_iter().flat_map(|actor| actor.join().expect("an actor finished")).collect()
    });
    drop(server);

    let failures: Vec<&String> = outcomes
        .iter()
        .filter_map(|outcome| if let Outcome::Failed(why) = outcome { Some(why) } else { None })
        .collect();
    assert!(failures.is_empty(), "every command succeeds side by side: {failures:#?}");

    // The next process to open the folder finishes what the killed ones left.
    let listed = patchbay.run(&["--json", "connection", "list", "--limit", "1000"]).ok().json();
    let connections: BTreeSet<String> = listed["items"].as_array().unwrap().iter().map(id).collect();
    let assets: BTreeSet<String> =
        patchbay.run(&["--json", "asset", "list"]).ok().json().as_array().unwrap().iter().map(id).collect();
    for outcome in &outcomes {
        match outcome {
            Outcome::ConnectionAdded(id) => {
                assert!(connections.contains(id), "connection {id} was reported but is gone")
            }
            Outcome::AssetCreated(id) => assert!(assets.contains(id), "asset {id} was reported but is gone"),
            Outcome::ConnectionDeleted(id) => assert!(!connections.contains(id), "deleted connection {id} is back"),
            Outcome::Failed(_) => unreachable!(),
        }
    }

    let db = rusqlite::Connection::open(patchbay.data_dir.path().join("patchbay.sqlite3")).unwrap();
    let unfinished: i64 = db
        .query_row(
            "SELECT (SELECT count(*) FROM connections WHERE lifecycle != 'active')
                  + (SELECT count(*) FROM assets WHERE lifecycle != 'active')",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(unfinished, 0, "no half-done row is left once the folder is opened again");

    let expected: BTreeSet<String> = connections
        .iter()
        .map(|id| format!("connection/{id}"))
        .chain(assets.iter().map(|id| format!("asset/{id}")))
        .collect();
    let stored: BTreeSet<String> = patchbay
        .vault_entries()
        .into_iter()
        .filter(|user| user.starts_with("connection/") || user.starts_with("asset/"))
        .collect();
    assert_eq!(stored, expected, "every row has its secret and no secret is left without its row");
}

#[test]
fn a_new_data_folder_opened_by_many_processes_at_once_works_for_all() {
    require_secret_service();
    let fake = FakeTwilio::start();
    let patchbay = Patchbay::new(&fake);
    let runs: Vec<Run> = thread::scope(|scope| {
        let creators: Vec<_> = (0..16)
            .map(|n| {
                let patchbay = &patchbay;
                // Half of them race for the same name.
                let name = if n % 2 == 0 { format!("Shared/Team {n}") } else { "Shared/Same".to_owned() };
                scope.spawn(move || patchbay.run(&["--json", "folder", "create", &name]))
            })
            .collect();
        creators.into_iter().map(|creator| creator.join().unwrap()).collect()
    });
    let codes: Vec<String> = runs.iter().filter(|run| run.code != Some(0)).map(Run::code).collect();
    assert_eq!(runs.iter().filter(|run| run.code == Some(0)).count(), 9, "8 distinct names and one 'Same': {codes:?}");
    assert_eq!(codes, vec!["name_taken"; 7], "the losers of a same-name race are told the name is taken");
}
