//! Runs the real `patchbay` binary with its own data folder and vault namespace,
//! pointed at a fake Twilio, and captures what it prints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::fake_twilio::FakeTwilio;

/// The `patchbay` binary of this build: `PATCHBAY_BIN`, or next to the test binary.
pub fn patchbay_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PATCHBAY_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join(format!("patchbay{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p patchbay-cli) or run tests/run.sh",
        bin.display()
    );
    bin
}

/// Fails loudly rather than letting a vault test pass against nothing.
pub fn require_secret_service() {
    assert!(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "these tests need a real Secret Service: run them through tests/run.sh (dbus-run-session + gnome-keyring)"
    );
}

/// A loopback port nothing listens on (discard): a request there is refused at once.
pub const NOWHERE: &str = "http://127.0.0.1:9";

pub struct Patchbay {
    pub data_dir: tempfile::TempDir,
    /// The vault service name this instance stores under, unique per test.
    pub vault_service: String,
    env: Vec<(String, String)>,
}

/// How `add_twilio` gets the Auth Token.
pub enum Token<'a> {
    Piped(&'a str),
    Asset(&'a str),
}

/// One finished run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "patchbay failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    /// stdout as JSON (for `--json` runs that succeeded).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {}", self.stdout))
    }

    /// The JSON error body on stderr of a failed `--json` run: its last line (a
    /// wrapper such as dbus-run-session may print before it).
    pub fn error(&self) -> Value {
        assert_ne!(self.code, Some(0), "expected a failure, got: {}", self.stdout);
        serde_json::from_str(self.stderr.trim().lines().last().unwrap_or_default())
            .unwrap_or_else(|err| panic!("stderr is not one JSON error ({err}): {}", self.stderr))
    }

    /// The error's stable code.
    pub fn code(&self) -> String {
        self.error()["code"].as_str().expect("a code").to_owned()
    }
}

impl Patchbay {
    pub fn new(fake: &FakeTwilio) -> Self {
        let data_dir = tempfile::tempdir().expect("a data folder");
        let vault_service = format!("patchbay-e2e-{}", crate::fake_twilio::unique_suffix());
        let env = vec![
            ("PATCHBAY_TWILIO_API_BASE".into(), fake.api_base().into()),
            ("PATCHBAY_TWILIO_ACCOUNTS_BASE".into(), fake.accounts_base().into()),
            ("PATCHBAY_TWILIO_RETRY_BACKOFF_MS".into(), "5".into()),
            // Services a test did not start a fake for: a closed loopback port, never the real one.
            ("PATCHBAY_SLACK_API_BASE".into(), NOWHERE.into()),
            ("PATCHBAY_SENDGRID_API_BASE".into(), NOWHERE.into()),
            ("PATCHBAY_SENDGRID_EU_API_BASE".into(), NOWHERE.into()),
            ("PATCHBAY_HTTP_LOOPBACK_ONLY".into(), "1".into()),
            ("PATCHBAY_VAULT_SERVICE".into(), vault_service.clone()),
        ];
        Self { data_dir, vault_service, env }
    }

    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.into(), value.into()));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(patchbay_bin());
        command.arg("--data-dir").arg(self.data_dir.path()).args(args);
        command.env_remove("PATCHBAY_DATA_DIR");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run_command(self.command(args), stdin)
    }

    /// `connection add twilio --json` in folder Shared, the token piped or by asset.
    pub fn add_twilio(&self, name: &str, phone: &str, sid: &str, token: Token<'_>, test_credentials: bool) -> Run {
        let mut args = vec!["--json", "connection", "add", "twilio", "--folder", "Shared", "--name", name];
        args.extend(["--phone", phone, "--account-sid", sid]);
        if test_credentials {
            args.push("--test-credentials");
        }
        match token {
            Token::Piped(value) => self.run_with_stdin(&[args, vec!["--auth-token-stdin"]].concat(), value),
            Token::Asset(asset) => self.run(&[args, vec!["--auth-token-asset", asset]].concat()),
        }
    }

    /// `connection add twilio --json` in folder Shared with no `--name`, the token piped.
    pub fn add_twilio_unnamed(&self, phone: &str, sid: &str, token: &str, test_credentials: bool) -> Run {
        let mut args = vec!["--json", "connection", "add", "twilio", "--folder", "Shared", "--phone", phone];
        args.extend(["--account-sid", sid, "--auth-token-stdin"]);
        if test_credentials {
            args.push("--test-credentials");
        }
        self.run_with_stdin(&args, token)
    }

    /// The secret stored under `user` (e.g. `asset/<id>`), read with `secret-tool lookup`.
    pub fn vault_secret(&self, user: &str) -> Option<String> {
        let output = Command::new("secret-tool")
            .args(["lookup", "service", &self.vault_service, "username", user])
            .output()
            .expect("secret-tool (libsecret-tools) is installed");
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// `secret-tool search` over this instance's vault entries: their `username`s.
    pub fn vault_entries(&self) -> Vec<String> {
        let output = Command::new("secret-tool")
            .args(["search", "--all", "service", &self.vault_service])
            .output()
            .expect("secret-tool (libsecret-tools) is installed");
        // A failed search must fail the test, not read as "no secrets left".
        assert!(output.status.success(), "secret-tool search failed: {}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        let mut users: Vec<String> =
            text.lines().filter_map(|line| line.strip_prefix("attribute.username = ")).map(str::to_owned).collect();
        users.sort();
        users
    }
}

pub fn run_command(mut command: Command, stdin: &str) -> Run {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("patchbay starts");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let Output { status, stdout, stderr } = child.wait_with_output().expect("patchbay finishes");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Every file below `dir` that contains `needle`, for "no secret on disk" checks.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("readable dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle)) {
                found.push(path);
            }
        }
    }
    found
}
