//! Connect's conversation with Twilio: which requests, in which order, and what each
//! answer means. Nothing here writes anything; the caller saves only on success.

use super::client::{Account, AccountStatus, ApiError, Credentials, TwilioClient, TwilioError};

/// The one `From` number Twilio accepts with test credentials.
pub const TEST_CREDENTIALS_FROM: &str = "+15005550006";
/// Where the test message goes: Twilio validates `To` like any real number even with
/// test credentials (a 555 number such as its docs' +15558675310 fails libphonenumber's
/// check), so this is a valid New York number in the 555-0100…0199 range that North
/// America reserves for fiction. Test messages are never delivered anyway.
pub const TEST_CREDENTIALS_TO: &str = "+12125550100";
const TEST_MESSAGE_BODY: &str = "Patchbay connection check";

/// Twilio codes for a `From` that test credentials cannot send from: the classic ones
/// (21212 invalid, 21606 not a message-capable Twilio number, 21611 queue full) and
/// those Twilio split out of them in July 2024 (twilio.com/docs/api/errors/21659, 21660,
/// 21661: not a Twilio number, not this account's number, not SMS-capable).
const TEST_FROM_REFUSED: [u32; 6] = [21212, 21606, 21611, 21659, 21660, 21661];

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// 401 / 20003. Twilio gives the same answer for every cause, most likely first.
    #[error(
        "Twilio did not accept this Account SID and Auth Token{}. Most likely one of them is mistyped, or the token was rotated since: copy both again from the Twilio Console (Account Info on the home page, or Account → API keys & tokens). Twilio answers the same for a suspended or closed account: check the account's status in the Console",
        .twilio_code.map(|c| format!(" (code {c})")).unwrap_or_default()
    )]
    AuthFailed { twilio_code: Option<u32>, twilio_message: Option<String> },
    /// 403 / 20403: authenticated, but the account may not use this resource.
    #[error(
        "Twilio refused access to this resource for the account (code 20403): {twilio_message}; a subaccount or a restricted account may lack the permission: check it in the Twilio Console"
    )]
    Forbidden { twilio_message: String },
    /// 404 on the Account itself: the SID names no account at this API base URL.
    #[error(
        "Twilio has no account {account_sid} at {api_base} (HTTP 404): check the Account SID, or the configured Twilio API base URL"
    )]
    AccountNotFound { account_sid: String, api_base: String },
    #[error("the Twilio account {account_sid} is suspended; reactivate it in the Twilio Console, then connect again")]
    AccountSuspended { account_sid: String },
    #[error("the Twilio account {account_sid} is closed and cannot be used; connect another account")]
    AccountClosed { account_sid: String },
    #[error(
        "these are live credentials, but Use Test Credentials is on; turn it off, or enter your Test Account SID and Test Auth Token"
    )]
    TestCredentialsExpected,
    #[error(
        "these are Test Credentials (Twilio answered code 20008), but Use Test Credentials is off; turn it on, or enter your live Account SID and Auth Token"
    )]
    LiveCredentialsExpected,
    #[error(
        "{phone_number} is not registered in the Twilio account {account_sid}; enter a number listed under Phone Numbers → Active numbers"
    )]
    PhoneNotInAccount { phone_number: String, account_sid: String },
    #[error(
        "Twilio refused {phone_number} as the sender for Test Credentials: {twilio_message} (code {twilio_code}); with test credentials use {TEST_CREDENTIALS_FROM}"
    )]
    TestPhoneInvalid { phone_number: String, twilio_code: u32, twilio_message: String },
    #[error(
        "Twilio did not accept this API key for account {account_sid} (code 20003): the secret may be mistyped, the key deleted, or the key made in another account or another Twilio region (a key works only there); check it under Account → API keys & tokens, or make a new key there"
    )]
    ApiKeyRejected { account_sid: String },
    #[error(
        "this API key belongs to account {key_account} ({key_account_name}), not {account_sid}; enter {key_account} as the Account SID, or use a key made in {account_sid}"
    )]
    ApiKeyOfOtherAccount { account_sid: String, key_account: String, key_account_name: String },
    #[error(
        "this Restricted API key may not read the account's phone numbers (code 70051: {twilio_message}); give it that permission in the Twilio Console, or use a Standard key"
    )]
    ApiKeyRestricted { twilio_message: String },
    #[error(transparent)]
    Twilio(#[from] TwilioError),
}

impl ConnectError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::AuthFailed { .. } => "twilio_auth_failed",
            Self::Forbidden { .. } => "twilio_forbidden",
            Self::AccountNotFound { .. } => "twilio_account_not_found",
            Self::AccountSuspended { .. } => "twilio_account_suspended",
            Self::AccountClosed { .. } => "twilio_account_closed",
            Self::TestCredentialsExpected => "twilio_test_credentials_expected",
            Self::LiveCredentialsExpected => "twilio_live_credentials_expected",
            Self::PhoneNotInAccount { .. } => "twilio_phone_not_in_account",
            Self::TestPhoneInvalid { .. } => "twilio_test_phone_invalid",
            Self::ApiKeyRejected { .. } => "twilio_api_key_rejected",
            Self::ApiKeyOfOtherAccount { .. } => "twilio_api_key_other_account",
            Self::ApiKeyRestricted { .. } => "twilio_api_key_restricted",
            Self::Twilio(err) => err.code(),
        }
    }

    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::TestCredentialsExpected | Self::LiveCredentialsExpected => Some("test_credentials"),
            Self::PhoneNotInAccount { .. } | Self::TestPhoneInvalid { .. } => Some("phone_number"),
            Self::ApiKeyRejected { .. } => Some("api_key_secret"),
            Self::ApiKeyOfOtherAccount { .. } => Some("account_sid"),
            _ => None,
        }
    }

    pub fn provider_message(&self) -> Option<String> {
        match self {
            Self::TestPhoneInvalid { twilio_message, .. }
            | Self::Forbidden { twilio_message }
            | Self::ApiKeyRestricted { twilio_message } => Some(twilio_message.clone()),
            Self::AuthFailed { twilio_message, .. } => twilio_message.clone(),
            Self::Twilio(super::client::TwilioError::Rejected(api)) => Some(api.message.clone()),
            _ => None,
        }
    }

    pub fn twilio_code(&self) -> Option<u32> {
        match self {
            Self::AuthFailed { twilio_code, .. } => *twilio_code,
            Self::Forbidden { .. } => Some(20403),
            Self::LiveCredentialsExpected => Some(20008),
            Self::TestPhoneInvalid { twilio_code, .. } => Some(*twilio_code),
            Self::ApiKeyRejected { .. } => Some(20003),
            Self::ApiKeyRestricted { .. } => Some(RESTRICTED_KEY_DENIED),
            Self::Twilio(err) => err.twilio_code(),
            _ => None,
        }
    }
}

/// What a successful Connect learned about the account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifiedAccount {
    pub friendly_name: Option<String>,
    pub account_type: Option<String>,
    /// With an API key: `Main` (it may read the Account) or `Standard`.
    pub api_key_type: Option<&'static str>,
}

/// "Authorization Failed": a Restricted key without the permission a resource needs.
const RESTRICTED_KEY_DENIED: u32 = 70051;

/// Checks credentials and, when the connection has one, its phone number the way Twilio
/// treats them (a connection without a number is account-level):
/// 1. `GET Accounts/{Sid}` (no side effects): 200 live, 403/20008 test, 401 wrong.
/// 2. Live: the account must be active and own the number. No request that could
///    send or cost anything is ever made with live credentials.
/// 3. Test: a `POST Messages` from the number, which Twilio accepts only from its
///    magic test number and never delivers.
pub async fn verify(
    client: &TwilioClient,
    credentials: Credentials<'_>,
    phone_number: Option<&str>,
    test_credentials: bool,
) -> Result<VerifiedAccount, ConnectError> {
    match client.fetch_account(credentials).await {
        Ok(account) => {
            if test_credentials {
                return Err(ConnectError::TestCredentialsExpected);
            }
            check_active_account(client, credentials, account, phone_number, None).await
        }
        Err(TwilioError::Rejected(api)) if api.status == 403 && api.code == Some(20008) => {
            if !test_credentials {
                return Err(ConnectError::LiveCredentialsExpected);
            }
            // An account-level connection has no number to send from: 20008 already
            // proved the test credentials.
            let Some(phone_number) = phone_number else { return Ok(VerifiedAccount::default()) };
            let sent = client.create_message(credentials, phone_number, TEST_CREDENTIALS_TO, TEST_MESSAGE_BODY).await;
            match sent {
                Ok(_) => Ok(VerifiedAccount::default()),
                Err(TwilioError::Rejected(api)) if api.code.is_some_and(|code| TEST_FROM_REFUSED.contains(&code)) => {
                    Err(ConnectError::TestPhoneInvalid {
                        phone_number: phone_number.to_owned(),
                        twilio_code: api.code.unwrap_or_default(),
                        twilio_message: api.message,
                    })
                }
                Err(err) => Err(err.into()),
            }
        }
        Err(TwilioError::Rejected(api)) if api.status == 401 => {
            Err(ConnectError::AuthFailed { twilio_code: api.code, twilio_message: Some(api.message) })
        }
        Err(TwilioError::Rejected(api)) if api.status == 403 => {
            Err(ConnectError::Forbidden { twilio_message: api.message })
        }
        Err(TwilioError::Rejected(api)) if api.status == 404 => Err(ConnectError::AccountNotFound {
            account_sid: credentials.account_sid.to_owned(),
            api_base: client.api_base().to_owned(),
        }),
        Err(err) => Err(err.into()),
    }
}

/// The live checks once the Account resource was read: active, and owning the number.
async fn check_active_account(
    client: &TwilioClient,
    credentials: Credentials<'_>,
    account: Account,
    phone_number: Option<&str>,
    api_key_type: Option<&'static str>,
) -> Result<VerifiedAccount, ConnectError> {
    match account.status {
        AccountStatus::Active => {}
        AccountStatus::Suspended => return Err(ConnectError::AccountSuspended { account_sid: account.sid }),
        AccountStatus::Closed => return Err(ConnectError::AccountClosed { account_sid: account.sid }),
    }
    check_phone(client, credentials, phone_number).await?;
    Ok(VerifiedAccount { friendly_name: account.friendly_name, account_type: account.account_type, api_key_type })
}

async fn check_phone(
    client: &TwilioClient,
    credentials: Credentials<'_>,
    phone_number: Option<&str>,
) -> Result<(), ConnectError> {
    if let Some(phone_number) = phone_number
        && !client.owns_phone_number(credentials, phone_number).await?
    {
        return Err(ConnectError::PhoneNotInAccount {
            phone_number: phone_number.to_owned(),
            account_sid: credentials.account_sid.to_owned(),
        });
    }
    Ok(())
}

/// Checks an API key (`credentials` with its SID) the way Twilio treats the kinds of key
/// (`shared/twilio/api-keys.md`); only reads, never a message:
/// 1. `GET Accounts/{Sid}`: 200 means a Main key (full access): the live checks follow.
/// 2. 401 / 20003 is what a Standard key gets there, and a wrong or deleted key too: the
///    account's phone numbers, which a Standard key may read, tell them apart (70051:
///    a Restricted key without that permission).
/// 3. Refused there too: `GET Accounts.json` names the account of a Main key made in
///    another account; a Standard key cannot read it, and Twilio answers a wrong secret,
///    a deleted key and a key of another account or region alike.
pub async fn verify_api_key(
    client: &TwilioClient,
    credentials: Credentials<'_>,
    phone_number: Option<&str>,
) -> Result<VerifiedAccount, ConnectError> {
    let restricted = |api: ApiError| ConnectError::ApiKeyRestricted { twilio_message: api.message };
    match client.fetch_account(credentials).await {
        Ok(account) => return check_active_account(client, credentials, account, phone_number, Some("Main")).await,
        Err(TwilioError::Rejected(api)) if api.status == 404 => {
            return Err(ConnectError::AccountNotFound {
                account_sid: credentials.account_sid.to_owned(),
                api_base: client.api_base().to_owned(),
            });
        }
        Err(TwilioError::Rejected(api)) if api.code == Some(RESTRICTED_KEY_DENIED) || api.status == 401 => {}
        Err(err) => return Err(err.into()),
    }
    match client.can_read_phone_numbers(credentials).await {
        Ok(()) => {
            check_phone(client, credentials, phone_number).await?;
            return Ok(VerifiedAccount { api_key_type: Some("Standard"), ..VerifiedAccount::default() });
        }
        Err(TwilioError::Rejected(api)) if api.code == Some(RESTRICTED_KEY_DENIED) => return Err(restricted(api)),
        Err(TwilioError::Rejected(api)) if api.status == 401 => {}
        Err(err) => return Err(err.into()),
    }
    let rejected = || ConnectError::ApiKeyRejected { account_sid: credentials.account_sid.to_owned() };
    match client.own_accounts(credentials).await {
        Ok(accounts) => match accounts.into_iter().next() {
            Some(own) if own.sid != credentials.account_sid => Err(ConnectError::ApiKeyOfOtherAccount {
                account_sid: credentials.account_sid.to_owned(),
                key_account: own.sid,
                key_account_name: own.friendly_name.unwrap_or_else(|| "no name".into()),
            }),
            _ => Err(rejected()),
        },
        Err(TwilioError::Rejected(api)) if api.status == 401 || api.status == 403 => Err(rejected()),
        Err(err) => Err(err.into()),
    }
}
