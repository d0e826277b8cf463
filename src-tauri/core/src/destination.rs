//! Where Patchbay may send a request on someone's behalf: the one rule for every address
//! that is not the operator's own configuration.
//!
//! - On a person's own desk (the window, the CLI): https anywhere, plain http to this
//!   machine only; `PATCHBAY_HTTP_LOOPBACK_ONLY` narrows that to this machine.
//! - For `patchbay serve`'s callers (event callbacks, credential store addresses, the HTTP
//!   connector's base URL): https to public addresses only, plus what the operator lists
//!   in `[serve] allow_destinations`. Every special-purpose address is refused otherwise,
//!   checked on the address written in the URL before anything is sent, and on every
//!   address a name resolves to at connect time ([`CheckedResolver`]), so the connection
//!   goes to a checked address and a second lookup cannot rebind it.
//! - Everywhere: `localhost`, `localhost.` and `*.localhost` are this machine and are
//!   never asked of DNS, and a URL carrying a username or password is refused without
//!   being repeated.
//!
//! The Twilio, Slack and SendGrid base URLs are the operator's configuration: they only
//! need https (plain http to this machine) and no credentials ([`check_base_url`]).

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Why a destination was refused. A refusal found on a resolved address says nothing
/// about what the name resolved to: the caller may be probing the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it is not a valid URL")]
    NotAUrl,
    #[error("it must use https (plain http only to this machine)")]
    PlainHttp,
    #[error("it carries a username or password, which would be stored and shown with it")]
    Credentials,
    #[error("this Patchbay may only call this machine (http_loopback_only in config.toml)")]
    OnlyThisMachine,
    #[error("it points at a special-purpose address ({0}), which is {NOT_ALLOWED}")]
    SpecialPurpose(&'static str),
    #[error("its address is {NOT_ALLOWED}")]
    Resolved,
}

const NOT_ALLOWED: &str = "not allowed for this Patchbay's API (see [serve] allow_destinations)";

impl Refusal {
    /// "the {what} '{raw}' is refused: …", without the URL when it carries credentials.
    pub fn explain(&self, what: &str, raw: &str) -> String {
        match self {
            Self::Credentials => format!("the {what} is refused: {self}"),
            _ => format!("the {what} '{raw}' is refused: {self}"),
        }
    }

    /// The refusal behind a failed request (the resolver's), if that is why it failed.
    pub fn behind<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Refusal> {
        let mut cause = Some(err);
        while let Some(current) = cause {
            if let Some(refusal) = current.downcast_ref::<Refusal>() {
                return Some(refusal);
            }
            cause = current.source();
        }
        None
    }
}

/// Who Patchbay works for: the person at this desk, or callers of `patchbay serve`
/// (set by the API adapter when it opens the core).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Reach {
    #[default]
    Desk,
    Served,
}

/// What `serve`'s callers may make Patchbay reach beyond public https addresses:
/// `[serve] allow_destinations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    loopback: bool,
    networks: Vec<IpNet>,
    /// Lowercase, without a trailing dot; every address they resolve to is allowed.
    hosts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a destination: give a host name (vault.corp.example), an IP network (10.20.0.0/16) or address, or 'loopback'"
)]
pub struct BadDestination(pub String);

impl Policy {
    /// Entries as written in `allow_destinations`; blank ones are skipped.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, BadDestination> {
        let mut policy = Self::default();
        for entry in entries.into_iter().map(str::trim).filter(|entry| !entry.is_empty()) {
            if entry.eq_ignore_ascii_case("loopback") || is_localhost(entry) {
                policy.loopback = true;
            } else if let Ok(network) = entry.parse::<IpNet>() {
                policy.networks.push(network.trunc());
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                policy.networks.push(ip.into());
            } else if let Ok(Host::Domain(name)) = Host::parse(entry)
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                policy.hosts.push(without_root_dot(&name).to_owned());
            } else {
                return Err(BadDestination(entry.to_owned()));
            }
        }
        Ok(policy)
    }

    /// `[events] allow_loopback_callbacks`, the old name of `loopback` in the list.
    pub fn allowing_loopback(mut self) -> Self {
        self.loopback = true;
        self
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        match special_purpose(ip) {
            None => Ok(()),
            Some(_) if self.networks.iter().any(|network| network.contains(&ip)) => Ok(()),
            // This machine itself: a translated or tunnelled form of 127/8 goes elsewhere.
            Some(LOOPBACK) if self.loopback && ip.is_loopback() => Ok(()),
            Some(kind) => Err(Refusal::SpecialPurpose(kind)),
        }
    }

    fn allows_host(&self, name: &str) -> bool {
        let name = without_root_dot(name);
        self.hosts.iter().any(|host| host.eq_ignore_ascii_case(name))
    }
}

/// Where one client may connect: the rule for the addresses that come through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinations {
    /// Some: the addresses come from `serve`'s callers; None: from the person at this desk.
    served: Option<Policy>,
    /// This machine only (`PATCHBAY_HTTP_LOOPBACK_ONLY`).
    loopback_only: bool,
}

impl Destinations {
    /// The credential stores' and the HTTP connector's rule.
    pub fn new(reach: Reach, policy: &Policy, loopback_only: bool) -> Self {
        let served = (reach == Reach::Served).then(|| policy.clone());
        Self { served, loopback_only }
    }

    /// Event callbacks are only ever given through the API.
    pub fn callbacks(policy: &Policy) -> Self {
        Self::new(Reach::Served, policy, false)
    }

    /// Whether the addresses come from `serve`'s callers, who learn nothing from a failure.
    pub fn is_served(&self) -> bool {
        self.served.is_some()
    }

    /// Checks the URL as written, before anything is sent: scheme, credentials, and the
    /// host when it is an address or this machine's name (other names are checked on
    /// each address they resolve to).
    pub fn check_url(&self, raw: &str) -> Result<Url, Refusal> {
        let url = Url::parse(raw).map_err(|_| Refusal::NotAUrl)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Refusal::PlainHttp);
        }
        let host = url.host().ok_or(Refusal::NotAUrl)?;
        let this_machine = names_this_machine(&host);
        if self.loopback_only && !this_machine {
            return Err(Refusal::OnlyThisMachine);
        }
        if url.scheme() == "http" && !this_machine {
            return Err(Refusal::PlainHttp);
        }
        if let Some(policy) = &self.served {
            match host {
                Host::Ipv4(ip) => policy.check_ip(ip.into())?,
                Host::Ipv6(ip) => policy.check_ip(ip.into())?,
                Host::Domain(name) if is_localhost(name) => policy.check_ip(Ipv4Addr::LOCALHOST.into())?,
                Host::Domain(_) => {}
            }
        }
        Ok(url)
    }

    /// Whether a request to `url` must bypass any proxy: a proxy would resolve the name
    /// itself, past the checks (and this machine's names must never reach a proxy's DNS).
    pub fn goes_direct(&self, url: &Url) -> bool {
        self.is_served() || url.host().is_some_and(|host| names_this_machine(&host))
    }

    /// The addresses `host` may be reached at: this machine's for its names (never asked
    /// of DNS), else those it resolves to that the rule allows.
    pub async fn addresses(&self, host: &str) -> Result<Vec<SocketAddr>, Box<dyn StdError + Send + Sync>> {
        if is_localhost(host) {
            if let Some(policy) = &self.served {
                policy.check_ip(Ipv4Addr::LOCALHOST.into())?;
            }
            return Ok(vec![(Ipv4Addr::LOCALHOST, 0).into(), (Ipv6Addr::LOCALHOST, 0).into()]);
        }
        if self.loopback_only {
            return Err(Box::new(Refusal::OnlyThisMachine));
        }
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        if resolved.is_empty() {
            return Err("the name has no address".into());
        }
        let Some(policy) = self.served.as_ref().filter(|policy| !policy.allows_host(host)) else {
            return Ok(resolved);
        };
        let allowed: Vec<SocketAddr> =
            resolved.into_iter().filter(|address| policy.check_ip(address.ip()).is_ok()).collect();
        if allowed.is_empty() {
            return Err(Box::new(Refusal::Resolved));
        }
        Ok(allowed)
    }
}

/// The DNS resolver of a client whose destinations are checked: reqwest asks it for
/// every name it connects to (never for an address written in the URL, which
/// [`Destinations::check_url`] checks before sending).
pub struct CheckedResolver(pub Destinations);

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let destinations = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = destinations.addresses(&host).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// A base URL from the operator's configuration, to which Patchbay sends credentials:
/// https, or http to this machine (tests, a local proxy), and no credentials in it (a
/// base URL is stored and shown as it is).
pub fn check_base_url(raw: &str) -> Result<Url, Refusal> {
    Destinations { served: None, loopback_only: false }.check_url(raw)
}

fn without_root_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

fn is_localhost(name: &str) -> bool {
    let name = without_root_dot(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// `localhost` (and `localhost.`, `*.localhost`) or a loopback address.
fn names_this_machine(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => is_localhost(name),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.to_canonical().is_loopback(),
    }
}

const LOOPBACK: &str = "loopback: this machine";
const UNSPECIFIED: &str = "unspecified: this network";
const PRIVATE: &str = "private";
const SHARED: &str = "shared: carrier-grade NAT";
const LINK_LOCAL: &str = "link-local, where cloud metadata lives";
const PROTOCOL: &str = "IETF protocol assignment";
const DOCUMENTATION: &str = "documentation";
const BENCHMARKING: &str = "benchmarking";
const ANYCAST: &str = "special-purpose anycast";
const MULTICAST: &str = "multicast";
const RESERVED: &str = "reserved";
const BROADCAST: &str = "broadcast";
const TUNNEL: &str = "Teredo tunnel";
const TRANSLATION: &str = "local-use IPv4/IPv6 translation";
const DISCARD: &str = "discard-only";
const DUMMY: &str = "dummy";
const SEGMENT_ROUTING: &str = "segment routing";
const SITE_LOCAL: &str = "site-local";

/// The IANA IPv4 Special-Purpose Address Registry
/// (https://www.iana.org/assignments/iana-ipv4-special-registry/) plus multicast (its own
/// registry), most specific first. Every entry is refused, even the few marked globally
/// reachable (AS112, AMT, the 6to4 relay): none is a place to send credentials or events.
const IPV4_SPECIAL: &[(&str, &str)] = &[
    ("0.0.0.0/8", UNSPECIFIED),
    ("10.0.0.0/8", PRIVATE),
    ("100.64.0.0/10", SHARED),
    ("127.0.0.0/8", LOOPBACK),
    ("169.254.0.0/16", LINK_LOCAL),
    ("172.16.0.0/12", PRIVATE),
    // 192.0.0.0/29 service continuity, .8 dummy, .9 PCP, .10 TURN, .170/.171 NAT64 discovery.
    ("192.0.0.0/24", PROTOCOL),
    ("192.0.2.0/24", DOCUMENTATION),
    ("192.31.196.0/24", ANYCAST),
    ("192.52.193.0/24", ANYCAST),
    ("192.88.99.0/24", ANYCAST),
    ("192.168.0.0/16", PRIVATE),
    ("192.175.48.0/24", ANYCAST),
    ("198.18.0.0/15", BENCHMARKING),
    ("198.51.100.0/24", DOCUMENTATION),
    ("203.0.113.0/24", DOCUMENTATION),
    ("224.0.0.0/4", MULTICAST),
    ("255.255.255.255/32", BROADCAST),
    ("240.0.0.0/4", RESERVED),
];

/// The IANA IPv6 Special-Purpose Address Registry
/// (https://www.iana.org/assignments/iana-ipv6-special-registry/) without the forms that
/// carry an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96, 6to4), whose
/// embedded address decides; plus site-local and multicast. Anything outside 2000::/3,
/// the global unicast space, is refused as reserved.
const IPV6_SPECIAL: &[(&str, &str)] = &[
    ("64:ff9b:1::/48", TRANSLATION),
    ("100::/64", DISCARD),
    ("100:0:0:1::/64", DUMMY),
    ("2001::/32", TUNNEL),
    // PCP, TURN and DNS-SD anycast, benchmarking, AMT, AS112, ORCHID, drone remote ID.
    ("2001::/23", PROTOCOL),
    ("2001:db8::/32", DOCUMENTATION),
    ("2620:4f:8000::/48", ANYCAST),
    ("3fff::/20", DOCUMENTATION),
    ("5f00::/16", SEGMENT_ROUTING),
    ("fc00::/7", PRIVATE),
    ("fe80::/10", LINK_LOCAL),
    ("fec0::/10", SITE_LOCAL),
    ("ff00::/8", MULTICAST),
];

static SPECIAL: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    IPV4_SPECIAL
        .iter()
        .chain(IPV6_SPECIAL)
        .map(|(network, kind)| (network.parse().expect("the registry tables are valid"), *kind))
        .collect()
});

const NAT64: &str = "64:ff9b::/96";
const GLOBAL_UNICAST: &str = "2000::/3";

/// The kind of special-purpose address `ip` is, or None for a public one.
fn special_purpose(ip: IpAddr) -> Option<&'static str> {
    let ip = ip.to_canonical();
    if let IpAddr::V6(v6) = ip {
        if v6.is_loopback() {
            return Some(LOOPBACK);
        }
        if v6.is_unspecified() {
            return Some(UNSPECIFIED);
        }
        if let Some(v4) = embedded_ipv4(v6) {
            return special_purpose(v4.into());
        }
    }
    if let Some((_, kind)) = SPECIAL.iter().find(|(network, _)| network.contains(&ip)) {
        return Some(kind);
    }
    match ip {
        IpAddr::V6(v6) if !network(GLOBAL_UNICAST).contains(&v6) => Some(RESERVED),
        _ => None,
    }
}

/// The IPv4 address an IPv6 one reaches through a translator or tunnel: NAT64
/// (64:ff9b::/96), 6to4 (2002::/16) and the deprecated IPv4-compatible ::a.b.c.d.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let octets = ip.octets();
    let last = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    if network(NAT64).contains(&ip) || ip.segments()[..6] == [0; 6] {
        Some(last)
    } else if ip.segments()[0] == 0x2002 {
        Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5]))
    } else {
        None
    }
}

fn network(text: &str) -> ipnet::Ipv6Net {
    text.parse().expect("a valid network")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Destinations {
        Destinations::callbacks(&Policy::default())
    }

    fn local() -> Destinations {
        Destinations::callbacks(&Policy::default().allowing_loopback())
    }

    fn desk() -> Destinations {
        Destinations::new(Reach::Desk, &Policy::default(), false)
    }

    /// An address inside every entry of both registries, and what serve's callers get.
    #[test]
    fn every_special_purpose_range_is_refused_and_public_addresses_pass() {
        for (address, verdict) in [
            // IPv4 registry.
            ("0.0.0.0", Some(UNSPECIFIED)),
            ("0.1.2.3", Some(UNSPECIFIED)),
            ("10.1.2.3", Some(PRIVATE)),
            ("100.64.0.1", Some(SHARED)),
            ("100.127.255.254", Some(SHARED)),
            ("127.0.0.1", Some(LOOPBACK)),
            ("127.8.9.10", Some(LOOPBACK)),
            ("169.254.169.254", Some(LINK_LOCAL)),
            ("172.16.0.1", Some(PRIVATE)),
            ("172.31.255.1", Some(PRIVATE)),
            ("192.0.0.1", Some(PROTOCOL)),
            ("192.0.0.8", Some(PROTOCOL)),
            ("192.0.0.9", Some(PROTOCOL)),
            ("192.0.0.10", Some(PROTOCOL)),
            ("192.0.0.170", Some(PROTOCOL)),
            ("192.0.0.171", Some(PROTOCOL)),
            ("192.0.0.200", Some(PROTOCOL)),
            ("192.0.2.1", Some(DOCUMENTATION)),
            ("192.31.196.1", Some(ANYCAST)),
            ("192.52.193.1", Some(ANYCAST)),
            ("192.88.99.1", Some(ANYCAST)),
            ("192.168.1.1", Some(PRIVATE)),
            ("192.175.48.1", Some(ANYCAST)),
            ("198.18.0.1", Some(BENCHMARKING)),
            ("198.19.255.1", Some(BENCHMARKING)),
            ("198.51.100.7", Some(DOCUMENTATION)),
            ("203.0.113.7", Some(DOCUMENTATION)),
            ("240.0.0.1", Some(RESERVED)),
            ("255.255.255.255", Some(BROADCAST)),
            // Multicast registry.
            ("224.0.0.1", Some(MULTICAST)),
            ("239.255.255.250", Some(MULTICAST)),
            // IPv6 registry.
            ("::1", Some(LOOPBACK)),
            ("::", Some(UNSPECIFIED)),
            ("::ffff:169.254.169.254", Some(LINK_LOCAL)),
            ("::ffff:127.0.0.1", Some(LOOPBACK)),
            ("::ffff:93.184.216.34", None),
            ("64:ff9b::a9fe:a9fe", Some(LINK_LOCAL)),
            ("64:ff9b::a00:1", Some(PRIVATE)),
            ("64:ff9b::5db8:d822", None),
            ("64:ff9b:1::1", Some(TRANSLATION)),
            ("100::1", Some(DISCARD)),
            ("100:0:0:1::1", Some(DUMMY)),
            ("2001::1", Some(TUNNEL)),
            ("2001:1::1", Some(PROTOCOL)),
            ("2001:1::2", Some(PROTOCOL)),
            ("2001:1::3", Some(PROTOCOL)),
            ("2001:2::1", Some(PROTOCOL)),
            ("2001:3::1", Some(PROTOCOL)),
            ("2001:4:112::1", Some(PROTOCOL)),
            ("2001:10::1", Some(PROTOCOL)),
            ("2001:20::1", Some(PROTOCOL)),
            ("2001:30::1", Some(PROTOCOL)),
            ("2001:db8::1", Some(DOCUMENTATION)),
            ("2002:a9fe:a9fe::1", Some(LINK_LOCAL)),
            ("2002:7f00:1::1", Some(LOOPBACK)),
            ("2002:5db8:d822::1", None),
            ("2620:4f:8000::1", Some(ANYCAST)),
            ("3fff::1", Some(DOCUMENTATION)),
            ("5f00::1", Some(SEGMENT_ROUTING)),
            ("fc00::1", Some(PRIVATE)),
            ("fd00:ec2::254", Some(PRIVATE)),
            ("fe80::1", Some(LINK_LOCAL)),
            // Beyond the registry: deprecated forms, multicast, and unallocated space.
            ("::a9fe:a9fe", Some(LINK_LOCAL)),
            ("::7f00:1", Some(LOOPBACK)),
            ("fec0::1", Some(SITE_LOCAL)),
            ("ff02::1", Some(MULTICAST)),
            ("4000::1", Some(RESERVED)),
            ("::ffff:0:a9fe:a9fe", Some(RESERVED)),
            // Public.
            ("93.184.216.34", None),
            ("8.8.8.8", None),
            ("2606:2800:220:1::1", None),
            ("2a00:1450:4001::1", None),
        ] {
            let ip: IpAddr = address.parse().unwrap();
            assert_eq!(special_purpose(ip), verdict, "{address}");
            let expected = verdict.map_or(Ok(()), |kind| Err(Refusal::SpecialPurpose(kind)));
            assert_eq!(Policy::default().check_ip(ip), expected, "{address}");
        }
    }

    #[test]
    fn the_probes_examples_are_refused_as_callbacks() {
        for (url, refusal) in [
            ("https://[64:ff9b::a9fe:a9fe]/", Refusal::SpecialPurpose(LINK_LOCAL)),
            ("https://[2002:a9fe:a9fe::1]/", Refusal::SpecialPurpose(LINK_LOCAL)),
            ("https://[::a9fe:a9fe]/", Refusal::SpecialPurpose(LINK_LOCAL)),
            ("https://192.0.0.170/", Refusal::SpecialPurpose(PROTOCOL)),
            ("https://198.18.0.1/", Refusal::SpecialPurpose(BENCHMARKING)),
            ("https://localhost./", Refusal::SpecialPurpose(LOOPBACK)),
            ("https://u:p@hooks.example.com/", Refusal::Credentials),
        ] {
            assert_eq!(strict().check_url(url), Err(refusal.clone()), "{url}");
            assert!(!refusal.explain("callback URL", url).contains("u:p"), "{url}");
        }
    }

    #[test]
    fn public_https_callbacks_pass_and_plain_http_only_to_an_allowed_loopback() {
        assert!(strict().check_url("https://hooks.example.com/twilio").is_ok());
        assert!(strict().check_url("https://hooks.example.com./twilio").is_ok());
        assert!(strict().check_url("https://93.184.216.34/hook").is_ok());
        for url in ["http://127.0.0.1:8080/events", "https://localhost/e", "http://[::1]/e", "http://a.localhost/e"] {
            assert_eq!(strict().check_url(url), Err(Refusal::SpecialPurpose(LOOPBACK)), "{url}");
            assert!(local().check_url(url).is_ok(), "{url}");
        }
        assert_eq!(local().check_url("http://hooks.example.com/events"), Err(Refusal::PlainHttp));
        assert_eq!(local().check_url("ftp://hooks.example.com/events"), Err(Refusal::PlainHttp));
        assert_eq!(local().check_url("not a url"), Err(Refusal::NotAUrl));
    }

    #[test]
    fn the_allow_list_takes_loopback_networks_addresses_and_hosts() {
        let policy = Policy::parse(["loopback", "10.20.0.0/16", " fd00::5 ", "Vault.Corp.Example.", ""]).unwrap();
        let served = Destinations::new(Reach::Served, &policy, false);
        assert!(served.check_url("https://10.20.3.4:8200").is_ok());
        assert_eq!(served.check_url("https://10.21.0.1"), Err(Refusal::SpecialPurpose(PRIVATE)));
        assert!(served.check_url("https://[fd00::5]/").is_ok());
        assert!(served.check_url("http://127.0.0.1:8200").is_ok());
        for translated in ["https://[64:ff9b::7f00:1]/", "https://[2002:7f00:1::1]/", "https://[::7f00:1]/"] {
            assert_eq!(served.check_url(translated), Err(Refusal::SpecialPurpose(LOOPBACK)), "{translated}");
        }
        assert!(policy.allows_host("vault.corp.example") && policy.allows_host("vault.corp.example."));
        assert!(!policy.allows_host("other.corp.example"));
        for bad in ["*.corp.example", "10.0.0.0/33", "https://vault", "vault corp"] {
            assert_eq!(Policy::parse([bad]), Err(BadDestination(bad.into())), "{bad}");
        }
    }

    #[test]
    fn the_desk_reaches_anywhere_over_https_and_this_machine_over_http() {
        assert!(desk().check_url("https://10.0.0.5:8200").is_ok());
        assert!(desk().check_url("http://127.0.0.1:4010").is_ok());
        assert!(desk().check_url("http://vault.localhost:8200").is_ok());
        assert_eq!(desk().check_url("http://10.0.0.5:8080"), Err(Refusal::PlainHttp));
        let loopback_only = Destinations::new(Reach::Desk, &Policy::default(), true);
        assert_eq!(loopback_only.check_url("https://api.example.com"), Err(Refusal::OnlyThisMachine));
        assert!(loopback_only.check_url("http://localhost.:9").is_ok());
    }

    #[tokio::test]
    async fn this_machines_names_resolve_to_loopback_without_dns() {
        let this_machine: Vec<SocketAddr> = vec![(Ipv4Addr::LOCALHOST, 0).into(), (Ipv6Addr::LOCALHOST, 0).into()];
        // Loopback-only refuses every other name before any lookup: these never reach DNS.
        let loopback_only = Destinations::new(Reach::Desk, &Policy::default(), true);
        for name in ["foo.localhost", "localhost", "localhost.", "Vault.LocalHost."] {
            assert_eq!(loopback_only.addresses(name).await.unwrap(), this_machine, "{name}");
            assert_eq!(local().addresses(name).await.unwrap(), this_machine, "{name}");
        }
        let refused = strict().addresses("foo.localhost").await.unwrap_err();
        assert_eq!(Refusal::behind(refused.as_ref()), Some(&Refusal::SpecialPurpose(LOOPBACK)));
        let elsewhere = loopback_only.addresses("example.com").await.unwrap_err();
        assert_eq!(Refusal::behind(elsewhere.as_ref()), Some(&Refusal::OnlyThisMachine));
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
        for raw in
            ["https://robot:s3cret@api.example.com", "https://s3cret@vault.example.com:8200", "http://u:s3cret@x"]
        {
            let refusal = check_base_url(raw).unwrap_err();
            assert_eq!(refusal, Refusal::Credentials, "{raw}");
            assert!(!refusal.explain("address", raw).contains("s3cret"), "{raw}");
        }
        let plain = check_base_url("http://api.example.com").unwrap_err();
        assert!(plain.explain("Base URL", "http://api.example.com").contains("'http://api.example.com'"));
    }
}
