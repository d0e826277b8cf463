//! Test support for Patchbay: a Twilio-faithful fake server and helpers that drive the
//! real `patchbay` binary against it and a real Secret Service.

pub mod dropping_proxy;
pub mod fake_http;
pub mod fake_sendgrid;
pub mod fake_slack;
pub mod fake_twilio;
pub mod harness;
pub mod locked_vault;
pub mod loopback;
pub mod openapi;
pub mod openbao;
pub mod serve;
