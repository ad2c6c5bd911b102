//! Real servers given by host name (`localhost:9001`): how a name becomes
//! the address tcpvsd connects to. The lookup itself is behind [`Resolve`],
//! so that tests can say what a name resolves to; [`System`] asks the C
//! library (getaddrinfo, which blocks: tcpvsd calls it on its control and
//! resolver threads, never on a worker).

use std::net::{SocketAddr, ToSocketAddrs};

use crate::spec::{ServerAddr, ServerSpec, TableError, Weight};
use crate::validate::{self, ServerText};

/// Looks host names up.
pub trait Resolve {
    /// The addresses of `name` (a host name, not an IP literal) with
    /// `port`, in the order the resolver gives them; an error says why
    /// there are none.
    fn lookup(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, String>;
}

/// The C library's resolver: /etc/hosts, DNS, as nsswitch.conf says.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Resolve for System {
    fn lookup(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        (name, port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(|e| e.to_string())
    }
}

/// A resolver that asks nobody: each name has an address of its own in the
/// documentation range 2001:db8::/32 (RFC 3849), made from the name, with
/// the port asked. For what needs a configuration read but no lookup to
/// leave the process (a DNS server out of reach makes one take seconds):
/// the daemon's settings read again at a reload, tcpvsadm's check of a
/// file, fuzzing. Distinct names stay distinct servers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offline;

impl Resolve for Offline {
    fn lookup(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        // FNV-1a over the lower-cased name (names are case-insensitive),
        // twice with different seeds: 96 bits below the /32.
        let hash = |seed: u64| {
            name.bytes().fold(seed, |h, b| {
                (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x100_0000_01b3)
            })
        };
        let (high, low) = (hash(0xcbf2_9ce4_8422_2325), hash(0x8422_2325_cbf2_9ce4));
        let bits = (0x2001_0db8_u128 << 96) | (u128::from(high as u32) << 64) | u128::from(low);
        Ok(vec![SocketAddr::new(
            std::net::Ipv6Addr::from(bits).into(),
            port,
        )])
    }
}

/// A real server as the operator wrote it (`IP:PORT` or `NAME:PORT`), its
/// name resolved with `resolver`.
pub fn server(
    resolver: &dyn Resolve,
    text: &str,
    weight: Weight,
) -> Result<ServerSpec, TableError> {
    match validate::server_text(text)? {
        ServerText::Addr(addr) => Ok(ServerSpec::new(addr, weight)),
        ServerText::Name { name, port } => {
            let addr = resolve(resolver, text, &name, port)?;
            Ok(ServerSpec::new(addr, weight).named(text))
        }
    }
}

/// The address tcpvsd takes of those `name` has: the first IPv4 one, else
/// the first, as HAProxy takes a server line's name (a backend on
/// 127.0.0.1 is reached by `localhost` even where getaddrinfo gives `::1`
/// first).
pub fn preferred(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
}

/// `name:port` (`configured`, for messages) looked up with `resolver`, the
/// [`preferred`] address taken.
pub fn resolve(
    resolver: &dyn Resolve,
    configured: &str,
    name: &str,
    port: u16,
) -> Result<ServerAddr, TableError> {
    let unresolved = |reason: String| TableError::Unresolved {
        server: configured.to_string(),
        reason,
    };
    let addrs = resolver.lookup(name, port).map_err(unresolved)?;
    preferred(&addrs)
        .map(ServerAddr)
        .ok_or_else(|| unresolved("no address".to_string()))
}

/// A resolver that, when `inner` fails for a name, answers with the
/// address the name had in `known` (the running table): a reload keeps a
/// server whose name does not resolve for the moment where it was, as the
/// periodic lookups do.
pub struct KeepKnown<'a> {
    pub inner: &'a dyn Resolve,
    pub known: &'a [ServerSpec],
}

impl Resolve for KeepKnown<'_> {
    fn lookup(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        self.inner.lookup(name, port).or_else(|reason| {
            let text = format!("{name}:{port}");
            self.known
                .iter()
                .find(|s| s.is_named(&text))
                .map(|s| vec![s.addr.0])
                .ok_or(reason)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn offline_names_have_addresses_of_their_own_and_ask_nobody() {
        let a = Offline.lookup("app1.example", 80).unwrap();
        assert_eq!(a, Offline.lookup("APP1.example", 80).unwrap(), "any case");
        assert_ne!(a, Offline.lookup("app2.example", 80).unwrap());
        assert_eq!(a[0].port(), 80);
        assert!(a[0].to_string().starts_with("[2001:db8:"), "{}", a[0]);
    }

    /// A resolver that knows the names it is given, for tests.
    #[derive(Debug, Default)]
    pub struct Names(pub HashMap<String, Vec<std::net::IpAddr>>);

    impl Names {
        pub fn with(pairs: &[(&str, &[&str])]) -> Self {
            let names = pairs
                .iter()
                .map(|(name, ips)| {
                    (
                        name.to_string(),
                        ips.iter().map(|ip| ip.parse().unwrap()).collect(),
                    )
                })
                .collect();
            Self(names)
        }
    }

    impl Resolve for Names {
        fn lookup(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
            match self.0.get(name) {
                Some(ips) => Ok(ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect()),
                None => Err("Name or service not known".to_string()),
            }
        }
    }

    #[test]
    fn a_server_is_an_address_or_a_name_that_resolves() {
        let names = Names::with(&[("app1.example.com", &["10.0.0.1"])]);
        let named = server(&names, "app1.example.com:80", Weight(2)).unwrap();
        assert_eq!(named.addr.to_string(), "10.0.0.1:80");
        assert_eq!(named.host.as_deref(), Some("app1.example.com:80"));
        assert_eq!(named.weight, Weight(2));
        let literal = server(&names, "10.0.0.9:80", Weight(1)).unwrap();
        assert_eq!(
            (literal.addr.to_string(), literal.host),
            ("10.0.0.9:80".into(), None)
        );
        let not_a_server = |text: &str| {
            format!(
                "`{text}` is not a real server: write IP:PORT or NAME:PORT, \
                 e.g. 192.168.10.1:80 or app1.example.com:80"
            )
        };
        for (text, message) in [
            (
                "app1.example.com",
                "`app1.example.com` needs a port: write IP:PORT, e.g. 192.168.10.1:80".into(),
            ),
            (
                "app1.example.com:0",
                "a real server needs a port other than 0: `app1.example.com:0`".into(),
            ),
            (
                "app1.example.com:http",
                not_a_server("app1.example.com:http"),
            ),
            ("not an address:80", not_a_server("not an address:80")),
            ("-a.example:80", not_a_server("-a.example:80")),
            (
                "10.0.0.300:80",
                "`10.0.0.300:80` is not an address: write IP:PORT, e.g. 192.168.10.1:80".into(),
            ),
            (
                "app2.example.com:80",
                "cannot resolve server `app2.example.com:80`: Name or service not known".into(),
            ),
        ] {
            assert_eq!(
                server(&names, text, Weight(1)).unwrap_err().to_string(),
                message,
                "{text}"
            );
        }
    }

    #[test]
    fn a_name_that_fails_keeps_the_address_it_had() {
        let names = Names::with(&[("a.example", &["10.0.0.1"])]);
        let known = [server(
            &Names::with(&[("b.example", &["10.0.0.2"])]),
            "b.example:80",
            Weight(1),
        )
        .unwrap()];
        let keep = KeepKnown {
            inner: &names,
            known: &known,
        };
        assert_eq!(at_80(&keep, "b.example").as_deref(), Ok("10.0.0.2:80"));
        assert_eq!(at_80(&keep, "a.example").as_deref(), Ok("10.0.0.1:80"));
        assert!(resolve(&keep, "b.example:81", "b.example", 81).is_err());
    }

    /// `name:80` resolved, as text.
    fn at_80(resolver: &dyn Resolve, name: &str) -> Result<String, String> {
        resolve(resolver, &format!("{name}:80"), name, 80)
            .map(|addr| addr.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_first_ipv4_address_is_taken() {
        let names = Names::with(&[
            ("dual", &["::1", "127.0.0.2", "127.0.0.3"]),
            ("six", &["::2", "::3"]),
            ("none", &[]),
        ]);
        assert_eq!(at_80(&names, "dual").as_deref(), Ok("127.0.0.2:80"));
        assert_eq!(at_80(&names, "six").as_deref(), Ok("[::2]:80"));
        assert_eq!(
            at_80(&names, "none").unwrap_err(),
            "cannot resolve server `none:80`: no address"
        );
        assert_eq!(
            at_80(&names, "x.invalid").unwrap_err(),
            "cannot resolve server `x.invalid:80`: Name or service not known"
        );
    }
}
