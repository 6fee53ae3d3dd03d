//! Which network addresses the engine may open connections to on a user's
//! behalf (webhook deliveries): by default only public ones. Checked on the
//! URL when a subscription is saved (an IP literal) and on every resolved
//! address at connect time, so a hostname that resolves to 127.0.0.1, or
//! re-resolves there later (DNS rebinding), is refused too.

use crate::config::WebhooksConfig;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What may be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Everything (`allow_private`).
    pub private: bool,
    /// Loopback only (`fanout dev`).
    pub loopback: bool,
}

impl Policy {
    pub fn of(c: &WebhooksConfig) -> Self {
        Policy {
            private: c.allow_private,
            loopback: c.allow_loopback,
        }
    }

    /// `Ok` when `ip` may be connected to, else what kind of address it is.
    pub fn allows(self, ip: IpAddr) -> Result<(), &'static str> {
        if self.private {
            return Ok(());
        }
        let ip = match ip {
            // ::ffff:127.0.0.1 is 127.0.0.1.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match classify(ip) {
            None => Ok(()),
            Some("loopback") if self.loopback => Ok(()),
            Some(kind) => Err(kind),
        }
    }
}

/// The kind of a non-public address (`None`: public).
fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        // RFC 1918 and carrier-grade NAT (100.64.0.0/10).
        Some("a private address")
    } else if ip.is_link_local() {
        // 169.254.0.0/16: cloud metadata services live here.
        Some("link-local")
    } else if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && (o[1] & 0xfe) == 18)
    {
        Some("a reserved address")
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_loopback() {
        Some("loopback")
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("a private address")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x0064 && s[1] == 0xff9b)
    {
        // Documentation, and NAT64 (which reaches IPv4 space behind it).
        Some("a reserved address")
    } else if let Some(v4) = ip.to_ipv4() {
        // IPv4-compatible forms.
        classify_v4(v4)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public() -> Policy {
        Policy {
            private: false,
            loopback: false,
        }
    }

    #[test]
    fn refuses_non_public_addresses() {
        for a in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert!(public().allows(ip).is_err(), "{a} should be refused");
        }
        for a in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(public().allows(ip), Ok(()), "{a} is public");
        }
    }

    #[test]
    fn loopback_opens_only_loopback() {
        let p = Policy {
            private: false,
            loopback: true,
        };
        assert!(p.allows("127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.allows("::1".parse().unwrap()).is_ok());
        assert_eq!(
            p.allows("10.0.0.1".parse().unwrap()),
            Err("a private address")
        );
        assert_eq!(
            p.allows("169.254.169.254".parse().unwrap()),
            Err("link-local")
        );
        let all = Policy {
            private: true,
            loopback: false,
        };
        assert!(all.allows("10.0.0.1".parse().unwrap()).is_ok());
    }
}
