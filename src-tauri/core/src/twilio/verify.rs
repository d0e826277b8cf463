//! Connect's conversation with Twilio: which requests, in which order, and what each
//! answer means. Nothing here writes anything; the caller saves only on success.

use super::client::{AccountStatus, Credentials, TwilioClient, TwilioError};

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
            Self::Twilio(err) => err.code(),
        }
    }

    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::TestCredentialsExpected | Self::LiveCredentialsExpected => Some("test_credentials"),
            Self::PhoneNotInAccount { .. } | Self::TestPhoneInvalid { .. } => Some("phone_number"),
            _ => None,
        }
    }

    pub fn provider_message(&self) -> Option<String> {
        match self {
            Self::TestPhoneInvalid { twilio_message, .. } | Self::Forbidden { twilio_message } => {
                Some(twilio_message.clone())
            }
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
}

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
            match account.status {
                AccountStatus::Active => {}
                AccountStatus::Suspended => return Err(ConnectError::AccountSuspended { account_sid: account.sid }),
                AccountStatus::Closed => return Err(ConnectError::AccountClosed { account_sid: account.sid }),
            }
            if let Some(phone_number) = phone_number
                && !client.owns_phone_number(credentials, phone_number).await?
            {
                return Err(ConnectError::PhoneNotInAccount {
                    phone_number: phone_number.to_owned(),
                    account_sid: account.sid,
                });
            }
            Ok(VerifiedAccount { friendly_name: account.friendly_name, account_type: account.account_type })
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
