//! A fake Twilio that listens on loopback and answers as `shared/twilio/` documents:
//! REST API 2010-04-01 on one port, Accounts v1 on another (one base URL per host, as
//! Patchbay is configured), HTTP Basic auth, Twilio's JSON error body, test credentials
//! with their magic numbers, paging, and the AuthTokens endpoints.
//!
//! Tests seed it, inject faults and read back the requests it received.

mod routes;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::loopback::LoopbackServer;

/// 32 random hex digits, for names that must not collide between tests.
pub fn unique_suffix() -> String {
    state::random_hex(32)
}

use state::State;
pub use state::{
    CredentialKind, Fault, Host, KeyKind, RecordedRequest, Seed, SeedAccount, SeedKey, SeedKeys, TestCredentials,
};

pub struct FakeTwilio {
    api_base: String,
    accounts_base: String,
    state: Arc<Mutex<State>>,
    _server: LoopbackServer,
}

impl FakeTwilio {
    /// Starts on two free loopback ports.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), "127.0.0.1:0".parse().unwrap())
    }

    pub fn start_on(api: SocketAddr, accounts: SocketAddr) -> Self {
        let state = Arc::new(Mutex::new(State::seeded()));
        let server = LoopbackServer::start(vec![
            (api, routes::router(state.clone(), Host::Api)),
            (accounts, routes::router(state.clone(), Host::Accounts)),
        ]);
        Self { api_base: server.base(0), accounts_base: server.base(1), state, _server: server }
    }

    /// Base URL standing in for `https://api.twilio.com`.
    pub fn api_base(&self) -> &str {
        &self.api_base
    }

    /// Base URL standing in for `https://accounts.twilio.com`.
    pub fn accounts_base(&self) -> &str {
        &self.accounts_base
    }

    /// The seeded accounts and their credentials.
    pub fn seed(&self) -> Seed {
        self.state().seed()
    }

    /// The next `times` requests (to either host) meet `fault`.
    pub fn inject(&self, fault: Fault, times: u32) {
        self.state().faults.push_back((fault, times, None));
    }

    /// The next `times` requests whose path contains `path` meet `fault`.
    pub fn inject_on(&self, path: &str, fault: Fault, times: u32) {
        self.state().faults.push_back((fault, times, Some(path.to_owned())));
    }

    /// How long a promoted Auth Token is refused before Twilio accepts it everywhere.
    pub fn set_propagation_delay(&self, delay: Duration) {
        self.state().propagation_delay = delay;
    }

    /// The account's secondary Auth Token, if it has one.
    pub fn secondary_token(&self, account_sid: &str) -> Option<String> {
        self.state().accounts.get(account_sid).and_then(|account| account.secondary_token.clone())
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().log.clone()
    }

    /// The account's current primary Auth Token.
    pub fn primary_token(&self, account_sid: &str) -> Option<String> {
        self.state().accounts.get(account_sid).map(|account| account.primary_token.clone())
    }

    /// A message that arrived at `to` from `from` (direction `inbound`), as a phone
    /// texting the account's number would leave it. Returns its SID.
    pub fn receive_message(&self, account_sid: &str, from: &str, to: &str, body: &str) -> String {
        self.receive_message_at(account_sid, from, to, body, chrono::Utc::now())
    }

    /// An inbound message Twilio received at `sent` (for an account with a long history).
    pub fn receive_message_at(
        &self,
        account_sid: &str,
        from: &str,
        to: &str,
        body: &str,
        sent: chrono::DateTime<chrono::Utc>,
    ) -> String {
        let mut message = routes::message_json(account_sid, from, to, body, "inbound");
        message["status"] = "received".into();
        message["date_sent"] = sent.to_rfc2822().into();
        let sid = message["sid"].as_str().expect("a sid").to_owned();
        self.state().messages.entry(account_sid.to_owned()).or_default().push(state::StoredMessage { json: message });
        sid
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
