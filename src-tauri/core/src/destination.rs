//! Where Patchbay may send a request on someone's behalf: event callbacks (a URL given
//! by whoever provisions an instance) and the Twilio base URLs (configuration).
//!
//! A callback is refused when it would reach this machine's or this network's insides:
//! private, link-local (the cloud metadata service at 169.254.169.254 among them),
//! carrier-grade NAT, unspecified, multicast and broadcast addresses, and loopback
//! unless the operator allowed it. The check runs on the addresses a name resolves to,
//! before any connection, and the connection is then made to a checked address only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Why a destination was refused; the message names the kind of address, never probes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it is not a valid URL")]
    NotAUrl,
    #[error("it must use https (plain http only to this machine)")]
    PlainHttp,
    #[error("it points at this machine (loopback), which this Patchbay does not allow for callbacks")]
    Loopback,
    #[error("it points at a {0} address, which Patchbay never calls")]
    Internal(&'static str),
    #[error("it carries a username or password, which would be stored and shown with it")]
    Credentials,
}

impl Refusal {
    /// "the {what} '{raw}' is refused: …", without the URL when it carries credentials.
    pub fn explain(&self, what: &str, raw: &str) -> String {
        match self {
            Self::Credentials => format!("the {what} is refused: {self}"),
            _ => format!("the {what} '{raw}' is refused: {self}"),
        }
    }
}

/// What callbacks may reach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackPolicy {
    /// Loopback callbacks (a receiver on this machine), e.g. for local automation.
    pub allow_loopback: bool,
}

impl CallbackPolicy {
    /// Checks the URL as written: scheme, and the host when it is an address.
    pub fn check_url(&self, raw: &str) -> Result<Url, Refusal> {
        let url = Url::parse(raw).map_err(|_| Refusal::NotAUrl)?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Refusal::PlainHttp);
        }
        match url.host() {
            None => return Err(Refusal::NotAUrl),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(name)) if is_localhost(name) && !self.allow_loopback => return Err(Refusal::Loopback),
            Some(Host::Domain(_)) => {}
        }
        if url.scheme() == "http" && !is_loopback_host(&url) {
            return Err(Refusal::PlainHttp);
        }
        Ok(url)
    }

    /// Checks one address a callback's name resolved to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        match kind_of(ip) {
            None => Ok(()),
            Some("loopback") if self.allow_loopback => Ok(()),
            Some("loopback") => Err(Refusal::Loopback),
            Some(kind) => Err(Refusal::Internal(kind)),
        }
    }
}

/// A base URL Patchbay sends credentials to: https, or http to this machine (tests, a
/// local proxy), and none in it (a base URL is stored and shown as it is).
pub fn check_base_url(raw: &str) -> Result<Url, Refusal> {
    let url = Url::parse(raw).map_err(|_| Refusal::NotAUrl)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_host(&url) => Ok(url),
        _ => Err(Refusal::PlainHttp),
    }
}

fn is_localhost(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost")
}

/// Whether the URL names this machine: `localhost` (and `*.localhost`) or a loopback address.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => is_localhost(name),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The kind of a non-public address, or None for a public one.
fn kind_of(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => kind_of_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => kind_of_v4(v4),
            None => kind_of_v6(v6),
        },
    }
}

fn kind_of_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if ip.is_private() {
        Some("private")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_broadcast() || ip.is_multicast() || a >= 240 {
        Some("broadcast, multicast or reserved")
    } else {
        None
    }
}

fn kind_of_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("link-local (cloud metadata)")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("private")
    } else if ip.is_multicast() {
        Some("broadcast, multicast or reserved")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: CallbackPolicy = CallbackPolicy { allow_loopback: false };
    const LOCAL: CallbackPolicy = CallbackPolicy { allow_loopback: true };

    #[test]
    fn public_https_callbacks_pass() {
        assert!(STRICT.check_url("https://hooks.example.com/twilio").is_ok());
        assert!(STRICT.check_url("https://93.184.216.34/hook").is_ok());
        assert!(STRICT.check_ip("93.184.216.34".parse().unwrap()).is_ok());
        assert!(STRICT.check_ip("2606:2800:220:1::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn internal_addresses_are_refused_by_kind() {
        for (address, kind) in [
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("10.1.2.3", "private"),
            ("172.20.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "broadcast, multicast or reserved"),
            ("fe80::1", "link-local (cloud metadata)"),
            ("fd00:ec2::254", "private"),
            ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
            ("::", "unspecified"),
        ] {
            assert_eq!(LOCAL.check_ip(address.parse().unwrap()), Err(Refusal::Internal(kind)), "{address}");
        }
        assert_eq!(
            STRICT.check_url("https://169.254.169.254/latest/meta-data"),
            Err(Refusal::Internal("link-local (cloud metadata)"))
        );
        assert_eq!(STRICT.check_url("https://[fd00::1]/hook"), Err(Refusal::Internal("private")));
    }

    #[test]
    fn loopback_only_when_allowed_and_plain_http_only_to_loopback() {
        for url in ["http://127.0.0.1:8080/events", "https://localhost/e", "http://[::1]/e", "http://127.8.9.10/e"] {
            assert_eq!(STRICT.check_url(url), Err(Refusal::Loopback), "{url}");
            assert!(LOCAL.check_url(url).is_ok(), "{url}");
        }
        assert_eq!(LOCAL.check_url("http://hooks.example.com/events"), Err(Refusal::PlainHttp));
        assert_eq!(LOCAL.check_url("ftp://hooks.example.com/events"), Err(Refusal::PlainHttp));
        assert_eq!(LOCAL.check_url("not a url"), Err(Refusal::NotAUrl));
    }

    #[test]
    fn base_urls_are_https_or_loopback() {
        assert!(check_base_url("https://api.twilio.com").is_ok());
        assert!(check_base_url("http://127.0.0.1:4010").is_ok());
        assert_eq!(check_base_url("http://api.twilio.com"), Err(Refusal::PlainHttp));
        assert_eq!(check_base_url("http://10.0.0.5:8080"), Err(Refusal::PlainHttp));
    }

    #[test]
    fn base_urls_carry_no_credentials_and_a_refusal_never_repeats_them() {
        for raw in ["https://robot:s3cret@api.example.com", "https://s3cret@vault.example.com:8200"] {
            let refusal = check_base_url(raw).unwrap_err();
            assert_eq!(refusal, Refusal::Credentials, "{raw}");
            assert!(!refusal.explain("address", raw).contains("s3cret"), "{raw}");
        }
        let plain = check_base_url("http://api.example.com").unwrap_err();
        assert!(plain.explain("Base URL", "http://api.example.com").contains("'http://api.example.com'"));
    }
}
