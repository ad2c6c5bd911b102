//! Addresses as `-L` shows them: as given with `-n`, otherwise by name, as
//! ipvsadm does (the host by a reverse lookup, the port by its service name
//! in /etc/services, each through getnameinfo). A configured host name
//! wins over the lookup.

use std::collections::HashMap;
use std::net::SocketAddr;

/// Turns addresses into what the listing shows, each looked up once.
#[derive(Debug, Default)]
pub struct Names {
    numeric: bool,
    known: HashMap<String, String>,
}

impl Names {
    /// `numeric`: show addresses as they are (`-n`).
    pub fn new(numeric: bool) -> Self {
        Self {
            numeric,
            known: HashMap::new(),
        }
    }

    /// `address` (`IP:PORT`) as the listing shows it; `host`, when the
    /// server was configured by name, is that name.
    pub fn address(&mut self, address: &str, host: Option<&str>) -> String {
        if self.numeric {
            return address.to_string();
        }
        let key = format!("{address} {}", host.unwrap_or(""));
        self.known
            .entry(key)
            .or_insert_with(|| named(address, host))
            .clone()
    }
}

/// `host:service` for `address`, or `address` itself when it is not
/// `IP:PORT`; what getnameinfo does not know stays a number. A server
/// configured by name (`configured`, `NAME:PORT`) is shown as written.
fn named(address: &str, configured: Option<&str>) -> String {
    if let Some(name_and_port) = configured {
        return name_and_port.to_string();
    }
    let Ok(addr) = address.parse::<SocketAddr>() else {
        return address.to_string();
    };
    let (looked_up, service) = dns_lookup::getnameinfo(&addr, 0)
        .unwrap_or_else(|_| (addr.ip().to_string(), addr.port().to_string()));
    // An address that has no name stays a number.
    let host = match looked_up.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        Ok(ip) => ip.to_string(),
        Err(_) => looked_up,
    };
    format!("{host}:{service}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_shows_addresses_as_given() {
        let mut names = Names::new(true);
        assert_eq!(names.address("127.0.0.1:80", None), "127.0.0.1:80");
        assert_eq!(
            names.address("127.0.0.1:80", Some("web1:80")),
            "127.0.0.1:80"
        );
    }

    #[test]
    fn names_come_from_the_host_and_services_files() {
        let mut names = Names::new(false);
        let loopback = names.address("127.0.0.1:80", None);
        assert!(loopback.starts_with("localhost:"), "{loopback}");
        // Ports without a service name stay numbers.
        assert_eq!(names.address("127.0.0.1:47999", None), "localhost:47999");
        // A server configured by name: its `NAME:PORT` as the view has it.
        assert_eq!(
            names.address("127.0.0.1:47999", Some("web1:47999")),
            "web1:47999"
        );
        assert_eq!(names.address("not an address", None), "not an address");
    }
}
