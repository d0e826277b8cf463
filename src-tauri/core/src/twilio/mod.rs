//! Twilio: the HTTP client and the Connect rules built on it.

mod client;
mod verify;

pub use client::{Account, AccountStatus, ApiError, Credentials, Message, TwilioClient, TwilioError};
pub use verify::{ConnectError, TEST_CREDENTIALS_FROM, VerifiedAccount, verify, verify_api_key};
