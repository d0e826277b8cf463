//! `patchbay serve` as a real process, and a blocking client for it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

use crate::harness::Patchbay;

/// A running `patchbay serve` on a loopback port of its choosing; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub auth: String,
    pub user: String,
    pub http: Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// serve as shipped: its callers may make it reach public https addresses only, so
    /// none of the tests' loopback services (callbacks, stores, HTTP instances).
    pub fn start(patchbay: &Patchbay) -> Self {
        Self::start_allowing(patchbay, "")
    }

    /// serve with `PATCHBAY_SERVE_ALLOW_DESTINATIONS=<destinations>`, e.g. `loopback` for
    /// a test whose OpenBao or REST service listens on this machine.
    pub fn start_allowing(patchbay: &Patchbay, destinations: &str) -> Self {
        let credentials = patchbay.run(&["--json", "api", "credentials"]).ok().json();
        let (user, org) =
            (credentials["user"].as_str().unwrap().to_owned(), credentials["organization"].as_str().unwrap());
        let mut child = patchbay
            .command(&["--json", "serve", "--listen", "127.0.0.1:0"])
            .env("PATCHBAY_SERVE_ALLOW_DESTINATIONS", destinations)
            .stdout(Stdio::piped())
            .spawn()
            .expect("patchbay serve starts");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let listening: Value =
            serde_json::from_str(&first).unwrap_or_else(|_| panic!("not the listening line: {first}"));
        Server {
            child,
            base: format!("http://{}", listening["listening"].as_str().unwrap()),
            auth: format!("User {user}, Organization {org}"),
            user,
            // serve closes a kept-alive connection that sends nothing for its header
            // timeout (5 s): a client must drop idle connections sooner, or a request
            // sent as the server closes one is lost (IncompleteMessage).
            http: Client::builder().pool_idle_timeout(Duration::from_secs(2)).build().expect("an HTTP client"),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).header("Authorization", &self.auth)
    }

    pub fn post(&self, body: &Value) -> (StatusCode, Value) {
        send(self.request(reqwest::Method::POST, "/instances").json(body))
    }

    pub fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.request(reqwest::Method::GET, path))
    }
}

pub fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().expect("the server answers");
    let status = response.status();
    (status, response.json().unwrap_or(Value::Null))
}
