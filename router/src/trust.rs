//! Which clients may tell the router how a request reached them: a TLS-terminating proxy in
//! front of paas (nginx, Caddy, a cloud load balancer, Cloudflare) sends
//! `X-Forwarded-Proto: https`, and the app must see it, or a Django app with
//! `SECURE_SSL_REDIRECT` redirects to https forever. From anyone else the header is a lie
//! and is replaced.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Address ranges (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`) whose forwarding headers the
/// router keeps. Empty by default: nobody is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(network, bits)| same_prefix(network, ip, bits))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn same_prefix(network: IpAddr, ip: IpAddr, bits: u8) -> bool {
    match (network, ip) {
        (IpAddr::V4(network), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(network) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(network), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(network) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of addresses and CIDR ranges; empty for none.
    fn from_str(list: &str) -> Result<TrustedProxies, String> {
        let mut ranges = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (address, bits) = match item.split_once('/') {
                Some((address, bits)) => (address, Some(bits)),
                None => (item, None),
            };
            let bad = || format!("{item:?} is not an IP address or a CIDR range like 10.0.0.0/8");
            let ip: IpAddr = address.parse().map_err(|_| bad())?;
            let ip = ip.to_canonical();
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(bits) => bits.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(bad)?,
                None => max,
            };
            ranges.push((ip, bits));
        }
        Ok(TrustedProxies(ranges))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.0.iter().map(|(ip, bits)| format!("{ip}/{bits}")).collect();
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_and_single_addresses() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.0.2.7,2001:db8::/32".parse().unwrap();
        assert!(trusted.contains(ip("10.20.30.40")));
        assert!(!trusted.contains(ip("11.0.0.1")));
        assert!(trusted.contains(ip("192.0.2.7")));
        assert!(!trusted.contains(ip("192.0.2.8")));
        assert!(trusted.contains(ip("2001:db8:1::5")));
        assert!(!trusted.contains(ip("2001:db9::5")));
        // A router listening on [::] sees IPv4 clients as IPv4-mapped IPv6 addresses.
        assert!(trusted.contains(ip("::ffff:10.1.2.3")));
        assert_eq!(trusted.to_string(), "10.0.0.0/8,192.0.2.7/32,2001:db8::/32");

        let everyone: TrustedProxies = "0.0.0.0/0".parse().unwrap();
        assert!(everyone.contains(ip("203.0.113.9")));
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        assert!(!TrustedProxies::default().contains(ip("127.0.0.1")));
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in ["10.0.0.0/33", "example.com", "10.0.0/8", "::/129", "1.2.3.4/x"] {
            let err = bad.parse::<TrustedProxies>().unwrap_err();
            assert!(err.contains("CIDR"), "{bad}: {err}");
        }
    }
}
