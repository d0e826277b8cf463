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

/// What an API key may reach (`shared/twilio/api-keys.md`): a Main key all a token may,
/// a Standard key everything but the Accounts and Keys resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Main,
    Standard,
}

#[derive(Debug, Clone)]
pub(crate) struct ApiKey {
    pub sid: String,
    pub secret: String,
    pub account_sid: String,
    pub kind: KeyKind,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeedKey {
    pub sid: String,
    pub secret: String,
}

/// API keys every fake starts with: of the live account, and of the trial one.
#[derive(Debug, Clone, Serialize)]
pub struct SeedKeys {
    pub main: SeedKey,
    pub standard: SeedKey,
    /// A Main key made in the trial account.
    pub other_account_main: SeedKey,
    /// A Standard key made in the trial account.
    pub other_account_standard: SeedKey,
}

/// Who authenticated: the credential kind, the account, and the API key used, if any.
pub(crate) struct Caller {
    pub kind: CredentialKind,
    pub account_sid: String,
    pub key: Option<KeyKind>,
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
    /// The API key's SID, when the request authenticated with one.
    pub api_key_sid: Option<String>,
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
    pub api_keys: SeedKeys,
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
    pub keys: Vec<ApiKey>,
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
            keys: Vec::new(),
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
        let (live, trial) = (state.order[0].clone(), state.order[1].clone());
        for (account, kind) in
            [(&live, KeyKind::Main), (&live, KeyKind::Standard), (&trial, KeyKind::Main), (&trial, KeyKind::Standard)]
        {
            state.keys.push(ApiKey { sid: new_sid("SK"), secret: random_hex(32), account_sid: account.clone(), kind });
        }
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
        let key = |index: usize| SeedKey { sid: self.keys[index].sid.clone(), secret: self.keys[index].secret.clone() };
        Seed {
            api_keys: SeedKeys {
                main: key(0),
                standard: key(1),
                other_account_main: key(2),
                other_account_standard: key(3),
            },
            test: self.accounts[&live.sid].test.clone().expect("the live account has test credentials"),
            live,
            trial: account(1),
            suspended: account(2),
            closed: account(3),
        }
    }

    /// Who `user:secret` is: an account (primary or secondary token), the test
    /// credentials of one, or an API key of an account. A suspended or closed account's
    /// credentials and keys are refused like wrong ones (401 / 20003), as Twilio does.
    pub fn authenticate(&self, user: &str, secret: &str) -> Option<Caller> {
        let active = |sid: &str| self.accounts.get(sid).filter(|account| account.status == "active");
        if let Some(key) = self.keys.iter().find(|key| key.sid == user && key.secret == secret) {
            return active(&key.account_sid).map(|account| Caller {
                kind: CredentialKind::Live,
                account_sid: account.sid.clone(),
                key: Some(key.kind),
            });
        }
        if let Some(account) = active(user) {
            let propagated = account.primary_accepted_from.is_none_or(|from| std::time::Instant::now() >= from);
            if (account.primary_token == secret && propagated) || account.secondary_token.as_deref() == Some(secret) {
                return Some(Caller { kind: CredentialKind::Live, account_sid: user.to_owned(), key: None });
            }
        }
        self.accounts.values().find_map(|account| {
            account.test.as_ref().filter(|test| test.sid == user && test.auth_token == secret).map(|test| Caller {
                kind: CredentialKind::Test,
                account_sid: test.sid.clone(),
                key: None,
            })
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
