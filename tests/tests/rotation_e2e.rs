//! Auth Token rotation with the real binary, the fake Twilio and the real Secret
//! Service: three dependent connections (two through one asset, one with its own copy),
//! a kill -9 at each of the seven steps followed by --resume, cancel, and a propagation
//! delay longer than the bound.

use std::time::Duration;

use patchbay_tests::fake_twilio::FakeTwilio;
use patchbay_tests::harness::{Patchbay, Run, Token, require_secret_service, run_command};
use serde_json::Value;

struct World {
    fake: FakeTwilio,
    patchbay: Patchbay,
    sid: String,
    old_token: String,
    asset_user: String,
    own_user: String,
}

fn world() -> World {
    require_secret_service();
    let fake = FakeTwilio::start();
    let mut patchbay = Patchbay::new(&fake);
    patchbay.set_env("PATCHBAY_ROTATION_PROPAGATION_TIMEOUT_MS", "5000");
    let seed = fake.seed();
    let (sid, token) = (seed.live.sid.clone(), seed.live.auth_token.clone());
    let asset = patchbay
        .run_with_stdin(&["--json", "asset", "create", "Twilio token", "--folder", "Shared"], &token)
        .ok()
        .json();
    for (name, phone) in [("Alerts", "+15551230001"), ("Invoices", "+15551230002")] {
        patchbay.add_twilio(name, phone, &sid, Token::Asset("Twilio token"), false).ok();
    }
    let own = patchbay.add_twilio("Own copy", "+15551230001", &sid, Token::Piped(&token), false).ok().json();
    World {
        asset_user: format!("asset/{}", asset["id"].as_str().unwrap()),
        own_user: format!("connection/{}", own["id"].as_str().unwrap()),
        fake,
        patchbay,
        sid,
        old_token: token,
    }
}

impl World {
    fn rotate(&self, extra_env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut command = self.patchbay.command(args);
        for (name, value) in extra_env {
            command.env(name, value);
        }
        run_command(command, "")
    }

    fn rotate_asset(&self, extra_env: &[(&str, &str)]) -> Run {
        self.rotate(
            extra_env,
            &["--json", "credential", "rotate", "--asset", "Twilio token", "--folder", "Shared", "--yes"],
        )
    }

    /// Every copy Patchbay holds is the fake's primary, which is not the old token, and
    /// all three connections are Connected with it.
    fn assert_rotated(&self) {
        let primary = self.fake.primary_token(&self.sid).unwrap();
        assert_ne!(primary, self.old_token, "the token changed at Twilio");
        assert_eq!(self.patchbay.vault_secret(&self.asset_user).as_deref(), Some(primary.as_str()));
        assert_eq!(self.patchbay.vault_secret(&self.own_user).as_deref(), Some(primary.as_str()));
        assert!(
            self.patchbay.vault_entries().iter().all(|user| !user.starts_with("rotation/")),
            "no pending token left"
        );
        let listed = self.patchbay.run(&["--json", "connection", "list"]).ok().json();
        for connection in listed["items"].as_array().unwrap() {
            let id = connection["id"].as_str().unwrap();
            let tested = self.patchbay.run(&["--json", "connection", "test", id]).ok().json();
            assert_eq!(tested["status"]["state"], "connected", "{}", connection["name"]);
        }
        // The old token is dead at Twilio.
        let old = self.patchbay.add_twilio("Old", "+15551230001", &self.sid, Token::Piped(&self.old_token), false);
        assert_eq!(old.code(), "twilio_auth_failed");
    }
}

#[test]
fn rotating_an_asset_updates_every_dependent_connection() {
    let world = world();
    let mut plan =
        world.patchbay.command(&["--json", "credential", "rotate", "--asset", "Twilio token", "--folder", "Shared"]);
    plan.env("PATCHBAY_LOG", "off");
    let unconfirmed = run_command(plan, "");
    assert_eq!(unconfirmed.code(), "invalid_input", "no --yes, no rotation");
    let shown: Value = serde_json::from_str(unconfirmed.stderr.lines().next().unwrap()).unwrap();
    let names: Vec<&str> =
        shown["dependents"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Alerts", "Invoices", "Own copy"], "the plan names every dependent");
    assert!(shown["warning"].as_str().unwrap().contains("401/403"));
    assert!(shown["warning"].as_str().unwrap().contains("revokes it first"), "the plan says a secondary goes");
    assert_eq!(world.fake.primary_token(&world.sid).as_deref(), Some(world.old_token.as_str()), "nothing changed yet");

    let before = world.fake.requests().len();
    let done = world.rotate_asset(&[]).ok().json();
    assert_eq!(done[0]["step"], "done");
    assert_eq!(done[0]["revalidated"].as_array().unwrap().len(), 3);
    // README states this figure: delete + create secondary, validate it, check the old
    // token, promote, see the new one accepted, and two requests per dependent to test it.
    assert_eq!(world.fake.requests().len() - before, 6 + 2 * 3, "the requests a rotation makes");
    world.assert_rotated();

    let history = world.patchbay.run(&["--json", "credential", "history"]).ok();
    assert!(!history.stdout.contains(&world.old_token));
    assert!(!history.stdout.contains(&world.fake.primary_token(&world.sid).unwrap()), "never a token in the history");
    assert_eq!(history.json()[0]["outcome"], "rotated; 3 of 3 dependent connections connected with the new token");
}

#[test]
fn a_kill_at_any_step_is_finished_by_resume() {
    for step in 1..=7 {
        let world = world();
        let killed = world.rotate_asset(&[("PATCHBAY_ROTATION_STOP_AFTER", &step.to_string())]);
        assert_eq!(killed.code, None, "step {step}: the process was killed ({})", killed.stderr);
        world.rotate(&[], &["--json", "credential", "rotate", "--resume"]).ok();
        world.assert_rotated();
        let history = world.patchbay.run(&["--json", "credential", "history"]).ok().json();
        assert_eq!(history[0]["step"], "done", "step {step}");
        assert!(
            !history[0]["outcome"].as_str().unwrap().contains("revoked"),
            "its own secondary is not someone else's"
        );
    }
}

#[test]
fn a_secondary_someone_else_made_is_revoked_and_the_rotation_says_so() {
    let world = world();
    // Someone is half-way through a rotation by hand: a secondary exists at Twilio.
    let made = reqwest::blocking::Client::new()
        .post(format!("{}/v1/AuthTokens/Secondary", world.fake.accounts_base()))
        .basic_auth(&world.sid, Some(&world.old_token))
        .send()
        .unwrap();
    assert_eq!(made.status().as_u16(), 201);
    let done = world.rotate_asset(&[]).ok().json();
    let outcome = done[0]["outcome"].as_str().unwrap();
    assert!(outcome.contains("a secondary Auth Token this rotation did not make was revoked"), "{outcome}");
    let history = world.patchbay.run(&["--json", "credential", "history"]).ok().json();
    assert_eq!(history[0]["outcome"].as_str(), Some(outcome), "the history keeps it");
    world.assert_rotated();
}

#[test]
fn a_slowly_propagating_token_is_asked_about_with_growing_pauses() {
    let world = world();
    world.fake.set_propagation_delay(Duration::from_millis(3500));
    let before = world.fake.requests().len();
    world.rotate_asset(&[]).ok();
    let checks = world.fake.requests()[before..]
        .iter()
        .filter(|r| r.method == "GET" && r.path == format!("/2010-04-01/Accounts/{}.json", world.sid))
        .count();
    // 3.5 s of propagation: asked at 0, 1, 3 and 7 s (then accepted), not every 250 ms;
    // plus the secondary's validation, the old token's check and three dependents.
    assert_eq!(checks, 4 + 2 + 3, "propagation checks back off");
    world.assert_rotated();
}

#[test]
fn cancelling_before_promotion_changes_nothing() {
    let world = world();
    let killed = world.rotate_asset(&[("PATCHBAY_ROTATION_STOP_AFTER", "3")]);
    assert_eq!(killed.code, None);
    assert!(world.fake.secondary_token(&world.sid).is_some());
    let cancelled = world.rotate(&[], &["--json", "credential", "rotate", "--cancel"]).ok().json();
    assert_eq!(cancelled[0]["step"], "cancelled");
    assert_eq!(world.fake.secondary_token(&world.sid), None, "the secondary is deleted");
    assert_eq!(world.fake.primary_token(&world.sid).as_deref(), Some(world.old_token.as_str()));
    assert_eq!(world.patchbay.vault_secret(&world.asset_user).as_deref(), Some(world.old_token.as_str()));
}

#[test]
fn slow_propagation_gives_a_clear_error_and_a_resumable_rotation() {
    let world = world();
    world.fake.set_propagation_delay(Duration::from_secs(3));
    let slow = world.rotate(
        &[("PATCHBAY_ROTATION_PROPAGATION_TIMEOUT_MS", "500")],
        &["--json", "credential", "rotate", "--asset", "Twilio token", "--folder", "Shared", "--yes"],
    );
    let error = slow.error();
    assert!(error["message"].as_str().unwrap().contains("--resume"), "{error}");
    assert_eq!(world.patchbay.run(&["--json", "credential", "history"]).ok().json()[0]["step"], "promoted");
    std::thread::sleep(Duration::from_secs(3));
    world.rotate(&[], &["--json", "credential", "rotate", "--resume"]).ok();
    world.assert_rotated();
}

#[test]
fn test_credentials_cannot_rotate() {
    let world = world();
    let seed = world.fake.seed();
    let test = world
        .patchbay
        .add_twilio("Test", "+15005550006", &seed.test.sid, Token::Piped(&seed.test.auth_token), true)
        .ok()
        .json();
    let refused =
        world.rotate(&[], &["--json", "credential", "rotate", "--connection", test["id"].as_str().unwrap(), "--yes"]);
    assert_eq!(refused.error()["field"], "test_credentials");
    assert!(world.fake.requests().iter().all(|r| !r.path.contains("AuthTokens")), "nothing was asked of Twilio");
}

#[test]
fn twilio_failing_at_a_step_leaves_a_rotation_that_resumes() {
    let world = world();
    world.fake.inject_on("/v1/AuthTokens/Promote", patchbay_tests::fake_twilio::Fault::Status(503), 1);
    let failed = world.rotate_asset(&[]);
    assert_eq!(failed.code(), "twilio_server_error");
    assert_eq!(world.fake.primary_token(&world.sid).as_deref(), Some(world.old_token.as_str()), "not promoted");
    assert_eq!(
        world.patchbay.vault_secret(&world.asset_user).as_deref(),
        Some(world.old_token.as_str()),
        "the working token is kept"
    );
    world.rotate(&[], &["--json", "credential", "rotate", "--resume"]).ok();
    world.assert_rotated();
}

#[test]
fn a_promotion_whose_answer_is_lost_is_finished_by_resume() {
    use patchbay_tests::fake_twilio::Fault;
    for fault in [Fault::StatusAfterApplying(503), Fault::DropAfterApplying] {
        let world = world();
        world.fake.set_propagation_delay(Duration::from_millis(600));
        world.fake.inject_on("/v1/AuthTokens/Promote", fault.clone(), 1);
        let failed = world.rotate_asset(&[]);
        assert_ne!(failed.code, Some(0), "the answer never came: {fault:?}");
        assert_ne!(world.fake.primary_token(&world.sid), Some(world.old_token.clone()), "Twilio did promote");
        assert!(
            world.patchbay.vault_entries().iter().any(|user| user.starts_with("rotation/")),
            "the promoted token is kept until it is stored everywhere"
        );
        world.rotate(&[], &["--json", "credential", "rotate", "--resume"]).ok();
        world.assert_rotated();
    }
}

/// Starts a rotation of the asset in the background, and SIGINTs it once `ready` holds.
fn interrupt_rotation_when(world: &World, ready: impl Fn() -> bool) -> Run {
    use std::process::Stdio;
    let mut command = world.patchbay.command(&[
        "--json",
        "credential",
        "rotate",
        "--asset",
        "Twilio token",
        "--folder",
        "Shared",
        "--yes",
    ]);
    let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "the rotation never got there");
        std::thread::sleep(Duration::from_millis(20));
    }
    let interrupted = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn ctrl_c_before_promotion_cancels_and_changes_nothing() {
    let world = world();
    // Twilio is slow to validate the new secondary: that is where the rotation waits.
    let account = format!("/2010-04-01/Accounts/{}.json", world.sid);
    world.fake.inject_on(&account, patchbay_tests::fake_twilio::Fault::Delay(Duration::from_secs(5)), 1);
    let run = interrupt_rotation_when(&world, || world.fake.secondary_token(&world.sid).is_some());
    assert_eq!(run.code(), "cancelled", "{}", run.stderr);
    assert_eq!(world.fake.secondary_token(&world.sid), None, "the secondary this rotation made is deleted");
    assert_eq!(world.fake.primary_token(&world.sid).as_deref(), Some(world.old_token.as_str()));
    assert_eq!(world.patchbay.vault_secret(&world.asset_user).as_deref(), Some(world.old_token.as_str()));
    assert!(world.patchbay.vault_entries().iter().all(|user| !user.starts_with("rotation/")));
    assert_eq!(world.patchbay.run(&["--json", "credential", "history"]).ok().json()[0]["step"], "cancelled");
}

#[test]
fn ctrl_c_after_promotion_finishes_storing_the_new_token() {
    let world = world();
    world.fake.set_propagation_delay(Duration::from_secs(2));
    let old = world.old_token.clone();
    let run = interrupt_rotation_when(&world, || world.fake.primary_token(&world.sid).is_some_and(|p| p != old));
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("already") || run.stderr.contains("live at Twilio"), "{}", run.stderr);
    world.assert_rotated();
}

#[test]
fn a_secondary_twilio_never_accepts_is_made_again_once_not_in_a_loop() {
    let world = world();
    // Twilio refuses the fresh secondary every time it is tried.
    let account = format!("/2010-04-01/Accounts/{}.json", world.sid);
    let refused =
        patchbay_tests::fake_twilio::Fault::Error { status: 401, code: 20003, message: "Authenticate".into() };
    world.fake.inject_on(&account, refused, 50);
    let failed = world.rotate_asset(&[("PATCHBAY_ROTATION_PROPAGATION_TIMEOUT_MS", "1500")]);
    assert!(
        failed.error()["message"].as_str().unwrap().contains("does not accept the new secondary"),
        "{}",
        failed.stderr
    );
    let created =
        world.fake.requests().iter().filter(|r| r.method == "POST" && r.path == "/v1/AuthTokens/Secondary").count();
    assert_eq!(created, 2, "the first secondary and one more, never a loop");
    assert_eq!(world.fake.primary_token(&world.sid).as_deref(), Some(world.old_token.as_str()), "nothing promoted");
}
