//! Two processes at one rotation, with the real binary, the fake Twilio and the real
//! Secret Service: the one that finds the rotation finished (or cancelled) by the other
//! reports how it ended, never an error of its own. And a CLI that gave up on the vault
//! exits as soon as it has answered.

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use patchbay_tests::fake_twilio::{FakeTwilio, Fault};
use patchbay_tests::harness::{Patchbay, Run, Token, require_secret_service};
use patchbay_tests::locked_vault::SilentBus;
use serde_json::Value;

/// Races are timing-dependent: each is run this many times, from a different step.
const ROUNDS: usize = 5;

struct World {
    fake: FakeTwilio,
    patchbay: Patchbay,
    sid: String,
    old_token: String,
}

/// An asset holding the live token, used by two connections.
fn world() -> World {
    require_secret_service();
    let fake = FakeTwilio::start();
    let mut patchbay = Patchbay::new(&fake);
    patchbay.set_env("PATCHBAY_ROTATION_PROPAGATION_TIMEOUT_MS", "5000");
    let seed = fake.seed();
    let (sid, old_token) = (seed.live.sid.clone(), seed.live.auth_token.clone());
    patchbay.run_with_stdin(&["--json", "asset", "create", "Twilio token", "--folder", "Shared"], &old_token).ok();
    for (name, phone) in [("Alerts", "+15551230001"), ("Invoices", "+15551230002")] {
        patchbay.add_twilio(name, phone, &sid, Token::Asset("Twilio token"), false).ok();
    }
    World { fake, patchbay, sid, old_token }
}

impl World {
    /// A rotation of the asset, stopped (the process aborted) right after `step`.
    fn stopped_rotation(&self, step: usize) {
        let mut command = self.patchbay.command(&[
            "--json",
            "credential",
            "rotate",
            "--asset",
            "Twilio token",
            "--folder",
            "Shared",
            "--yes",
        ]);
        command.env("PATCHBAY_ROTATION_STOP_AFTER", step.to_string());
        let stopped = patchbay_tests::harness::run_command(command, "");
        assert_eq!(stopped.code, None, "stopped after step {step}: {}", stopped.stderr);
    }

    /// Slows Twilio's next answer about the account, so that whichever process gets to
    /// Twilio first is still running when the other looks at the rotation.
    fn slow_next_account_check(&self) {
        let account = format!("/2010-04-01/Accounts/{}.json", self.sid);
        self.fake.inject_on(&account, Fault::Delay(Duration::from_millis(800)), 1);
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.patchbay.command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// The rotation as the history keeps it.
    fn last_rotation(&self) -> Value {
        self.patchbay.run(&["--json", "credential", "history"]).ok().json()[0].clone()
    }

    fn assert_rotated(&self) {
        let primary = self.fake.primary_token(&self.sid).unwrap();
        assert_ne!(primary, self.old_token, "the token changed at Twilio");
        assert!(self.patchbay.vault_entries().iter().all(|user| !user.starts_with("rotation/")), "no pending token");
        let assets = self.patchbay.run(&["--json", "asset", "list"]).ok().json();
        let user = format!("asset/{}", assets[0]["id"].as_str().unwrap());
        assert_eq!(self.patchbay.vault_secret(&user), Some(primary), "the asset holds the new token");
    }

    fn assert_unchanged(&self) {
        assert_eq!(self.fake.primary_token(&self.sid).as_deref(), Some(self.old_token.as_str()));
        assert_eq!(self.fake.secondary_token(&self.sid), None, "the secondary is deleted");
        assert!(self.patchbay.vault_entries().iter().all(|user| !user.starts_with("rotation/")), "no pending token");
    }
}

fn finish(child: Child) -> Run {
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

const RESUME: &[&str] = &["--json", "credential", "rotate", "--resume"];
const CANCEL: &[&str] = &["--json", "credential", "rotate", "--cancel"];

#[test]
fn two_resumes_of_a_stopped_rotation_both_report_the_rotation_as_it_ended() {
    for step in 1..=ROUNDS {
        let world = world();
        world.stopped_rotation(step);
        world.slow_next_account_check();
        let (first, second) = (world.spawn(RESUME), world.spawn(RESUME));
        let (first, second) = (finish(first), finish(second));
        let (first, second) = (first.ok().json(), second.ok().json());
        let ended = world.last_rotation();
        assert_eq!(ended["step"], "done", "step {step}");
        assert_eq!(first, Value::Array(vec![ended.clone()]), "step {step}: the first reports the record");
        assert_eq!(second, first, "step {step}: the other reports the same record");
        assert_eq!(ended["revalidated"].as_array().unwrap().len(), 2, "step {step}: {ended}");
        world.assert_rotated();
    }
}

#[test]
fn a_cancel_racing_a_resume_is_told_the_rotation_completed_or_cancels_it() {
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        let world = world();
        // Before promotion, where a cancel can still win.
        world.stopped_rotation(1 + round % 3);
        world.slow_next_account_check();
        let (resume, cancel) = if round % 2 == 0 {
            (world.spawn(RESUME), world.spawn(CANCEL))
        } else {
            let cancel = world.spawn(CANCEL);
            (world.spawn(RESUME), cancel)
        };
        let (resume, cancel) = (finish(resume), finish(cancel));
        let ended = world.last_rotation();
        let said = format!("round {round}\nresume: {resume:?}\ncancel: {cancel:?}");
        match ended["step"].as_str() {
            Some("done") => {
                assert_eq!(resume.code, Some(0), "{said}");
                assert_eq!(resume.json(), Value::Array(vec![ended.clone()]), "{said}");
                // Too late to cancel, with the rotation as it ended; or nothing left to cancel.
                if cancel.code == Some(0) {
                    assert_eq!(cancel.json(), Value::Array(vec![]), "{said}");
                } else {
                    assert_eq!(cancel.code(), "rotation_completed", "{said}");
                    assert_eq!(cancel.error()["rotation"], ended, "{said}");
                }
                world.assert_rotated();
            }
            Some("cancelled") => {
                assert_eq!(cancel.code, Some(0), "{said}");
                assert_eq!(cancel.json(), Value::Array(vec![ended.clone()]), "{said}");
                // Told it was cancelled by the other; or it found nothing left to resume.
                if resume.code == Some(0) {
                    assert_eq!(resume.json(), Value::Array(vec![]), "{said}");
                } else {
                    assert_eq!(resume.code(), "cancelled", "{said}");
                    assert!(resume.error()["message"].as_str().unwrap().contains("another process"), "{said}");
                }
                world.assert_unchanged();
            }
            _ => panic!("the rotation ended neither done nor cancelled: {ended}\n{said}"),
        }
        outcomes.push(ended["step"].clone());
    }
    eprintln!("outcomes: {outcomes:?}");
}

/// Resumes the stopped rotation in the background and cancels it from another process
/// while the resume waits on Twilio (holding the rotation): (resume, cancel).
fn cancel_while_a_resume_waits_on_twilio(world: &World) -> (Run, Run) {
    let account = format!("/2010-04-01/Accounts/{}.json", world.sid);
    world.fake.inject_on(&account, Fault::Delay(Duration::from_secs(2)), 1);
    let before = world.fake.requests().len();
    let resume = world.spawn(RESUME);
    let deadline = Instant::now() + Duration::from_secs(20);
    while world.fake.requests().len() == before {
        assert!(Instant::now() < deadline, "the resume never asked Twilio");
        std::thread::sleep(Duration::from_millis(20));
    }
    let cancel = world.patchbay.run(CANCEL);
    (finish(resume), cancel)
}

#[test]
fn a_cancel_before_promotion_is_done_by_the_run_which_says_another_process_cancelled() {
    let world = world();
    world.stopped_rotation(2);
    let (resume, cancel) = cancel_while_a_resume_waits_on_twilio(&world);
    let ended = world.last_rotation();
    assert_eq!(ended["step"], "cancelled");
    assert_eq!(cancel.ok().json(), Value::Array(vec![ended]), "the cancel reports the cancelled rotation");
    assert_eq!(resume.code(), "cancelled", "{resume:?}");
    let message = resume.error()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("cancelled by another process"), "{message}");
    world.assert_unchanged();
}

#[test]
fn a_cancel_after_promotion_waits_for_the_run_and_is_told_the_rotation_completed() {
    let world = world();
    world.stopped_rotation(4);
    let (resume, cancel) = cancel_while_a_resume_waits_on_twilio(&world);
    let ended = world.last_rotation();
    assert_eq!(ended["step"], "done");
    assert_eq!(resume.ok().json(), Value::Array(vec![ended.clone()]));
    assert_eq!(cancel.code(), "rotation_completed", "{cancel:?}");
    assert!(cancel.error()["message"].as_str().unwrap().contains("cannot be cancelled"), "{cancel:?}");
    assert_eq!(cancel.error()["rotation"], ended, "the cancel reports the rotation as it ended");
    world.assert_rotated();
}

#[test]
fn a_cli_that_gave_up_on_the_vault_exits_at_once() {
    // A session bus that never answers: the Secret Service's client waits, as it does on
    // a locked keyring's unlock prompt that nobody answers.
    let bus = SilentBus::start();
    let fake = FakeTwilio::start();
    let patchbay = Patchbay::new(&fake);
    let timeout = Duration::from_secs(2);
    let commands: [&[&str]; 2] = [
        &["--json", "asset", "create", "Twilio token", "--folder", "Shared"],
        // serve reads the API's credentials from the vault before it listens.
        &["--json", "serve", "--listen", "127.0.0.1:0"],
    ];
    for args in commands {
        let mut command = patchbay.command(args);
        command.env("DBUS_SESSION_BUS_ADDRESS", &bus.address);
        command.env("PATCHBAY_VAULT_TIMEOUT_MS", timeout.as_millis().to_string());
        let started = Instant::now();
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"a-token-value\n").unwrap();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(15) {
                child.kill().unwrap();
                panic!("{args:?}: still running {:?} after it started", started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let exited = started.elapsed();
        let run = finish(child);
        assert_eq!(run.code(), "vault_locked", "{args:?}: {run:?}");
        assert!(exited >= timeout, "{args:?}: the answer comes at the vault timeout, not before ({exited:?})");
    }
}
