//! Typed address ranges: the parsed form of an IPAddressPool's `spec.addresses` entries.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4
    V4,
    /// IPv6
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// Longest prefix length of the family (32 or 128).
    pub fn max_prefix_len(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// An inclusive range of addresses of one family, `start <= end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpRange {
    start: IpAddr,
    end: IpAddr,
}

/// Why an address entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Neither a CIDR nor a range.
    #[error("{0:?} is neither a CIDR (192.0.2.0/24) nor a range (192.0.2.10-192.0.2.20)")]
    Syntax(String),
    /// A CIDR whose prefix length is too long for its family.
    #[error(
        "{entry:?}: prefix length {len} is longer than {max}, the most an {family} prefix can have"
    )]
    PrefixTooLong {
        /// the entry
        entry: String,
        /// its prefix length
        len: String,
        /// the family's maximum
        max: u8,
        /// the family
        family: Family,
    },
    /// One side of a range is not an address.
    #[error("{0:?} is not an IP address")]
    BadAddress(String),
    /// A range from one family to the other.
    #[error("range {start} - {end} mixes IPv4 and IPv6")]
    MixedFamilies {
        /// first address
        start: IpAddr,
        /// last address
        end: IpAddr,
    },
    /// A range whose start is after its end.
    #[error("range start {start} is after its end {end}")]
    Reversed {
        /// first address
        start: IpAddr,
        /// last address
        end: IpAddr,
    },
    /// A range that includes addresses no LoadBalancer may use.
    #[error(
        "{range} includes {what} addresses ({block}); LoadBalancer IPs must be unicast addresses"
    )]
    Special {
        /// the range
        range: IpRange,
        /// what the special block is
        what: &'static str,
        /// the special block
        block: IpNet,
    },
}

/// Address blocks a LoadBalancer IP can never come from.
fn special_blocks() -> [(IpNet, &'static str); 9] {
    let v4 = |a, b, c, d, len| {
        IpNet::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), len).expect("valid literal prefix")
    };
    let v6 = |seg: u16, len| {
        IpNet::new(IpAddr::V6(Ipv6Addr::new(seg, 0, 0, 0, 0, 0, 0, 0)), len)
            .expect("valid literal prefix")
    };
    [
        (v4(0, 0, 0, 0, 8), "\"this network\""),
        (v4(127, 0, 0, 0, 8), "loopback"),
        (v4(169, 254, 0, 0, 16), "link-local"),
        (v4(224, 0, 0, 0, 4), "multicast"),
        (v4(240, 0, 0, 0, 4), "reserved or broadcast"),
        (v6(0, 128), "unspecified"),
        (
            IpNet::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128).expect("valid"),
            "loopback",
        ),
        (v6(0xfe80, 10), "link-local"),
        (v6(0xff00, 8), "multicast"),
    ]
}

impl IpRange {
    /// A range from `start` to `end` (inclusive).
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, RangeError> {
        if Family::of(&start) != Family::of(&end) {
            return Err(RangeError::MixedFamilies { start, end });
        }
        if start > end {
            return Err(RangeError::Reversed { start, end });
        }
        Ok(Self { start, end })
    }

    /// The range a CIDR covers (host bits of the address are ignored, as `ip route` does).
    pub fn from_net(net: IpNet) -> Self {
        Self {
            start: net.network(),
            end: net.broadcast(),
        }
    }

    /// Parses a pool entry: `192.0.2.0/24`, `2001:db8::/64`, `192.0.2.10-192.0.2.20` (spaces
    /// around `-` allowed), and refuses ranges that include non-unicast addresses.
    pub fn parse_entry(entry: &str) -> Result<Self, RangeError> {
        let text = entry.trim();
        let range = if let Some((a, b)) = text.split_once('-') {
            let parse = |s: &str| {
                s.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| RangeError::BadAddress(s.trim().to_owned()))
            };
            Self::new(parse(a)?, parse(b)?)?
        } else if let Some((addr, len)) = text.split_once('/') {
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| RangeError::Syntax(entry.to_owned()))?;
            let family = Family::of(&ip);
            let bits: u8 = len
                .parse()
                .map_err(|_| RangeError::Syntax(entry.to_owned()))?;
            let net = IpNet::new(ip, bits).map_err(|_| RangeError::PrefixTooLong {
                entry: entry.to_owned(),
                len: len.to_owned(),
                max: family.max_prefix_len(),
                family,
            })?;
            Self::from_net(net)
        } else {
            return Err(RangeError::Syntax(entry.to_owned()));
        };
        if let Some((block, what)) = special_blocks()
            .into_iter()
            .find(|(block, _)| range.overlaps(&Self::from_net(*block)))
        {
            return Err(RangeError::Special { range, what, block });
        }
        Ok(range)
    }

    /// First address.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// Last address.
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// The family of both ends.
    pub fn family(&self) -> Family {
        Family::of(&self.start)
    }

    /// Number of addresses, saturating at `u128::MAX` for `::/0`.
    pub fn len(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.start <= ip && ip <= self.end
    }

    /// Whether two ranges share an address.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.family() == other.family() && self.start <= other.end && other.start <= self.end
    }

    /// The smallest set of CIDRs that covers exactly this range.
    pub fn cidrs(&self) -> Vec<IpNet> {
        match (self.start, self.end) {
            (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect(),
            (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cidrs().as_slice() {
            [net] => write!(f, "{net}"),
            _ => write!(f, "{}-{}", self.start, self.end),
        }
    }
}

/// An address as a number, for range arithmetic.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn entries_users_write_parse_to_the_range_they_mean() {
        let cases = [
            ("192.0.2.0/24", "192.0.2.0", "192.0.2.255"),
            ("192.0.2.10-192.0.2.20", "192.0.2.10", "192.0.2.20"),
            ("192.0.2.10 - 192.0.2.20", "192.0.2.10", "192.0.2.20"),
            (" 192.0.2.7/32 ", "192.0.2.7", "192.0.2.7"),
            ("192.0.2.5/30", "192.0.2.4", "192.0.2.7"),
            (
                "2001:db8:0:1::200-2001:db8:0:1::2ff",
                "2001:db8:0:1::200",
                "2001:db8:0:1::2ff",
            ),
            (
                "2001:db8:100::/56",
                "2001:db8:100::",
                "2001:db8:100:ff:ffff:ffff:ffff:ffff",
            ),
        ];
        for (entry, start, end) in cases {
            let r = IpRange::parse_entry(entry).expect(entry);
            assert_eq!((r.start(), r.end()), (ip(start), ip(end)), "{entry}");
        }
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        let cases = [
            (
                "10.0.0.5-10.0.0.1",
                "range start 10.0.0.5 is after its end 10.0.0.1",
            ),
            ("1.2.3.4/33", "prefix length 33 is longer than 32"),
            ("2001:db8::/129", "prefix length 129 is longer than 128"),
            ("192.0.2.1-2001:db8::1", "mixes IPv4 and IPv6"),
            ("fe80::/10", "link-local"),
            ("0.0.0.0/0", "\"this network\""),
            ("224.0.0.1-224.0.0.9", "multicast"),
            ("100.0.0.0-200.0.0.0", "loopback"),
            ("192.0.2.0", "neither a CIDR"),
            ("", "neither a CIDR"),
            ("192.0.2.300-192.0.2.301", "is not an IP address"),
            ("192.0.2.0/abc", "neither a CIDR"),
        ];
        for (entry, want) in cases {
            let err = IpRange::parse_entry(entry).expect_err(entry).to_string();
            assert!(err.contains(want), "{entry}: {err}");
        }
    }

    #[test]
    fn a_range_summarises_into_the_fewest_cidrs() {
        let r = IpRange::parse_entry("192.0.2.200-192.0.2.239").expect("valid");
        let cidrs: Vec<String> = r.cidrs().iter().map(ToString::to_string).collect();
        assert_eq!(
            cidrs,
            ["192.0.2.200/29", "192.0.2.208/28", "192.0.2.224/28"]
        );
        assert_eq!(r.len(), 40);
    }

    #[test]
    fn huge_ipv6_ranges_count_without_overflow() {
        let r = IpRange::parse_entry("2001:db8::/32").expect("valid");
        assert_eq!(r.len(), 1u128 << 96);
    }

    #[test]
    fn overlap_is_per_family_and_inclusive() {
        let a = IpRange::parse_entry("192.0.2.0/25").expect("valid");
        let b = IpRange::parse_entry("192.0.2.127-192.0.2.200").expect("valid");
        let c = IpRange::parse_entry("192.0.2.128/25").expect("valid");
        assert!(a.overlaps(&b) && b.overlaps(&c));
        assert!(!a.overlaps(&c));
    }
}
