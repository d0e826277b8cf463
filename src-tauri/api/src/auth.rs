//! Platform auth: `Authorization: User <user secret>, Organization <organization secret>`
//! for everything, or `User <user secret>, Element <instance token>` for one instance.
//! Connector platforms' clients also send all three (churros adds the instance token to
//! its default header once it has one): the organization's secrets decide then.

use axum::http::HeaderMap;
use patchbay_core::Secret;
use patchbay_core::instances::secrets_equal;

/// Who the caller proved to be.
pub enum Caller {
    /// Holds the user and organization secrets: every instance.
    Organization,
    /// Holds the user secret and this instance token: that instance only.
    Element(Secret),
}

pub fn caller(headers: &HeaderMap, user: &Secret, organization: &Secret) -> Option<Caller> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let mut sent_user = None;
    let mut sent_org = None;
    let mut sent_element = None;
    for part in value.split(',') {
        let (scheme, secret) = part.trim().split_once(' ')?;
        let secret = Secret::new(secret.trim());
        match scheme {
            "User" => sent_user = Some(secret),
            "Organization" => sent_org = Some(secret),
            "Element" => sent_element = Some(secret),
            _ => return None,
        }
    }
    if !secrets_equal(&sent_user?, user) {
        return None;
    }
    match (sent_org, sent_element) {
        (Some(org), _) if secrets_equal(&org, organization) => Some(Caller::Organization),
        (None, Some(token)) => Some(Caller::Element(token)),
        _ => None,
    }
}
