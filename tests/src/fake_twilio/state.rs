//! What the fake Twilio knows: accounts, tokens, numbers, messages, injected faults and
//! the log of requests it received.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Host {
    Api,
    Accounts,
}

/// What the next request(s) meet instead of (or before) a normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally, after this long.
    Delay(Duration),
    /// A 5xx with Twilio's error body.
    Status(u16),
    /// 429 with code 20429.
    RateLimit,
    /// 200 with a truncated JSON body.
    MalformedJson,
    /// The connection closes before the answer is complete.
    DropConnection,
    /// Twilio's error body with this status, code and message, instead of the answer.
    Error { status: u16, code: u32, message: String },
    /// The request takes effect (a token is promoted, a secondary made), then the
    /// answer is this 5xx: the client cannot tell that it worked.
    StatusAfterApplying(u16),
    /// The request takes effect, then the connection closes: the answer is lost.
    DropAfterApplying,
}

/// How the request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Live,
    Test,
    Invalid,
    Missing,
}

/// One received request, without its credentials.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    pub host: Host,
    pub method: String,
    pub path: String,
    pub query: String,
    pub account_sid: Option<String>,
    pub credential: CredentialKind,
    pub form: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedAccount {
    pub sid: String,
    pub auth_token: String,
    pub friendly_name: String,
    pub phone_numbers: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestCredentials {
    pub sid: String,
    pub auth_token: String,
}

/// The accounts every fake starts with; tokens are random for each fake.
#[derive(Debug, Clone, Serialize)]
pub struct Seed {
    /// Active, Full, owns two numbers.
    pub live: SeedAccount,
    /// Active, Trial, owns one number.
    pub trial: SeedAccount,
    pub suspended: SeedAccount,
    pub closed: SeedAccount,
    /// The Test Credentials of `live`.
    pub test: TestCredentials,
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub sid: String,
    pub friendly_name: String,
    pub status: &'static str,
    pub account_type: &'static str,
    pub primary_token: String,
    /// Until then a just-promoted primary is not accepted yet (propagation).
    pub primary_accepted_from: Option<std::time::Instant>,
    pub secondary_token: Option<String>,
    pub phone_numbers: Vec<String>,
    pub created: chrono::DateTime<chrono::Utc>,
    /// The Test Account SID and token that belong to this account.
    pub test: Option<TestCredentials>,
}

#[derive(Debug, Clone)]
pub(crate) struct StoredMessage {
    pub json: serde_json::Value,
}

pub(crate) struct State {
    pub accounts: BTreeMap<String, Account>,
    pub messages: BTreeMap<String, Vec<StoredMessage>>,
    /// Fault, how many more requests it hits, and the path it is for (any, if None).
    pub faults: VecDeque<(Fault, u32, Option<String>)>,
    /// How long a promoted Auth Token takes to be accepted.
    pub propagation_delay: Duration,
    pub log: Vec<RecordedRequest>,
    order: Vec<String>,
}

pub(crate) fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap()).collect()
}

pub(crate) fn new_sid(prefix: &str) -> String {
    format!("{prefix}{}", random_hex(32))
}

impl State {
    pub fn seeded() -> Self {
        let mut state = Self {
            accounts: BTreeMap::new(),
            messages: BTreeMap::new(),
            faults: VecDeque::new(),
            propagation_delay: Duration::ZERO,
            log: Vec::new(),
            order: Vec::new(),
        };
        let test = TestCredentials { sid: new_sid("AC"), auth_token: random_hex(32) };
        state.add("Acme Operations", "active", "Full", &["+15551230001", "+15551230002"], Some(test));
        state.add("Acme Trial", "active", "Trial", &["+15551239001"], None);
        state.add("Dormant Ltd", "suspended", "Full", &["+15551238001"], None);
        state.add("Gone Inc", "closed", "Full", &["+15551237001"], None);
        state
    }

    fn add(
        &mut self,
        name: &str,
        status: &'static str,
        account_type: &'static str,
        numbers: &[&str],
        test: Option<TestCredentials>,
    ) {
        let sid = new_sid("AC");
        self.order.push(sid.clone());
        self.accounts.insert(
            sid.clone(),
            Account {
                sid,
                friendly_name: name.to_owned(),
                status,
                account_type,
                primary_token: random_hex(32),
                primary_accepted_from: None,
                secondary_token: None,
                phone_numbers: numbers.iter().map(|n| n.to_string()).collect(),
                created: chrono::Utc::now(),
                test,
            },
        );
    }

    pub fn seed(&self) -> Seed {
        let account = |index: usize| {
            let account = &self.accounts[&self.order[index]];
            SeedAccount {
                sid: account.sid.clone(),
                auth_token: account.primary_token.clone(),
                friendly_name: account.friendly_name.clone(),
                phone_numbers: account.phone_numbers.clone(),
            }
        };
        let live = account(0);
        Seed {
            test: self.accounts[&live.sid].test.clone().expect("the live account has test credentials"),
            live,
            trial: account(1),
            suspended: account(2),
            closed: account(3),
        }
    }

    /// Who `sid:token` is: the live account (primary or secondary token) or the test
    /// credentials of one. A suspended or closed account's credentials are refused like
    /// wrong ones (401 / 20003), as Twilio does.
    pub fn authenticate(&self, sid: &str, token: &str) -> Option<(CredentialKind, String)> {
        if let Some(account) = self.accounts.get(sid).filter(|account| account.status == "active") {
            let propagated = account.primary_accepted_from.is_none_or(|from| std::time::Instant::now() >= from);
            if (account.primary_token == token && propagated) || account.secondary_token.as_deref() == Some(token) {
                return Some((CredentialKind::Live, sid.to_owned()));
            }
        }
        self.accounts.values().find_map(|account| {
            account
                .test
                .as_ref()
                .filter(|test| test.sid == sid && test.auth_token == token)
                .map(|test| (CredentialKind::Test, test.sid.clone()))
        })
    }

    /// The next fault to apply to a request for `path`, if any.
    pub fn take_fault(&mut self, path: &str) -> Option<Fault> {
        let index =
            self.faults.iter().position(|(_, _, only)| only.as_deref().is_none_or(|only| path.contains(only)))?;
        let (fault, remaining, _) = &mut self.faults[index];
        let fault = fault.clone();
        *remaining = remaining.saturating_sub(1);
        if *remaining == 0 {
            self.faults.remove(index);
        }
        Some(fault)
    }
}
