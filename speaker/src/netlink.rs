//! The node's interface table, from rtnetlink, and which interfaces may announce.
//!
//! [`Interfaces`] is a plain snapshot (links with their flags, MAC, bond/bridge master and
//! addresses). [`watch_interfaces`] builds it with one dump and keeps it current from the kernel's
//! multicast notifications (links, IPv4 and IPv6 addresses) — no polling — and re-dumps when the
//! kernel reports that notifications were lost (`Overrun`). Link up/down arrives as `RTM_NEWLINK`
//! with new flags, so each `NEWLINK` replaces the link's state and the change is logged.
//!
//! [`eligibility`] is the pure rule deciding whether an interface may answer ARP/NDP, as MetalLB
//! decides it (`internal/layer2/announcer.go`) but from netlink instead of a 10-second sysfs scan:
//! it must be up with a carrier, not loopback, not `NOARP`, have an Ethernet MAC, not be enslaved
//! to a bond or bridge (the master answers), and its name must not match the [`ExcludeList`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkLayerType, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{Handle, MulticastGroup};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::layer2::arp::Mac;

pub mod neighbour;

/// An address configured on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfAddr {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
}

/// One network interface, as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// MAC address, if it is an Ethernet-like interface.
    pub mac: Option<Mac>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// `IFF_BROADCAST`.
    pub broadcast: bool,
    /// `IFF_NOARP` (no ARP and no neighbour discovery on it).
    pub noarp: bool,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// The bond or bridge this interface is enslaved to.
    pub master: Option<u32>,
    /// Addresses configured on it.
    pub addrs: BTreeSet<IfAddr>,
}

impl Interface {
    /// An interface named `name` with index `index`, down and without addresses.
    pub fn new(index: u32, name: impl Into<String>) -> Self {
        Self {
            index,
            name: name.into(),
            mac: None,
            up: false,
            lower_up: false,
            broadcast: false,
            noarp: false,
            loopback: false,
            master: None,
            addrs: BTreeSet::new(),
        }
    }

    /// Whether IPv6 runs on it (it has a link-local address).
    pub fn ipv6_link_local(&self) -> bool {
        self.addrs.iter().any(|a| match a.addr {
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
            IpAddr::V4(_) => false,
        })
    }

    /// The link part of an `RTM_NEWLINK` (addresses are kept by the caller).
    fn from_link(msg: &LinkMessage) -> Option<Self> {
        let mut iface = Self::new(msg.header.index, String::new());
        let flags = msg.header.flags;
        iface.up = flags.contains(LinkFlags::Up);
        iface.lower_up = flags.contains(LinkFlags::LowerUp);
        iface.broadcast = flags.contains(LinkFlags::Broadcast);
        iface.noarp = flags.contains(LinkFlags::Noarp);
        iface.loopback = flags.contains(LinkFlags::Loopback);
        let ethernet = msg.header.link_layer_type == LinkLayerType::Ether;
        for attribute in &msg.attributes {
            match attribute {
                LinkAttribute::IfName(name) => iface.name.clone_from(name),
                LinkAttribute::Address(bytes) if ethernet => {
                    iface.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(Mac);
                }
                LinkAttribute::Controller(master) if *master != 0 => iface.master = Some(*master),
                _ => {}
            }
        }
        (!iface.name.is_empty()).then_some(iface)
    }
}

/// A snapshot of the node's interfaces, by index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interfaces {
    /// Every interface, by index.
    pub by_index: BTreeMap<u32, Interface>,
}

impl Interfaces {
    /// A snapshot holding `interfaces`.
    pub fn from_interfaces(interfaces: impl IntoIterator<Item = Interface>) -> Self {
        Self {
            by_index: interfaces.into_iter().map(|i| (i.index, i)).collect(),
        }
    }

    /// The interface named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Interface> {
        self.by_index.values().find(|i| i.name == name)
    }

    /// The MACs of all interfaces (usable or not): frames from these are this node's own.
    pub fn macs(&self) -> BTreeSet<Mac> {
        self.by_index.values().filter_map(|i| i.mac).collect()
    }

    /// Applies one link or address message; returns whether the snapshot changed.
    fn apply(&mut self, msg: &RouteNetlinkMessage) -> bool {
        match msg {
            RouteNetlinkMessage::NewLink(link) => self.new_link(link),
            RouteNetlinkMessage::DelLink(link) => {
                // AF_BRIDGE DELLINK means "no longer a bridge port", not "deleted".
                link.header.interface_family == AddressFamily::Unspec
                    && self.by_index.remove(&link.header.index).is_some()
            }
            RouteNetlinkMessage::NewAddress(a) => self.address(a, true),
            RouteNetlinkMessage::DelAddress(a) => self.address(a, false),
            _ => false,
        }
    }

    fn new_link(&mut self, msg: &LinkMessage) -> bool {
        // Bridge-port notifications (AF_BRIDGE) describe the port, not the link.
        if msg.header.interface_family != AddressFamily::Unspec {
            return false;
        }
        let Some(mut new) = Interface::from_link(msg) else {
            return false;
        };
        match self.by_index.get_mut(&new.index) {
            Some(old) => {
                new.addrs = std::mem::take(&mut old.addrs);
                if (old.up, old.lower_up) != (new.up, new.lower_up) {
                    debug!(
                        interface = %new.name,
                        up = new.up,
                        carrier = new.lower_up,
                        "interface link state changed"
                    );
                }
                let changed = *old != new;
                *old = new;
                changed
            }
            None => {
                debug!(interface = %new.name, index = new.index, "new link");
                self.by_index.insert(new.index, new);
                true
            }
        }
    }

    fn address(&mut self, msg: &AddressMessage, add: bool) -> bool {
        let Some(addr) = address_of(msg) else {
            return false;
        };
        let Some(iface) = self.by_index.get_mut(&msg.header.index) else {
            return false;
        };
        if add {
            iface.addrs.insert(addr)
        } else {
            iface.addrs.remove(&addr)
        }
    }
}

/// The interface's own address in an address message (`IFA_LOCAL` for IPv4 point-to-point
/// links, where `IFA_ADDRESS` is the peer).
fn address_of(msg: &AddressMessage) -> Option<IfAddr> {
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    local.or(address).map(|addr| IfAddr {
        addr,
        prefix_len: msg.header.prefix_len,
    })
}

/// A name pattern of the exclude list: MetalLB's defaults are all `^prefix.*` or `^name$`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamePattern {
    /// The name is exactly this.
    Exact(String),
    /// The name starts with this.
    Prefix(String),
}

impl NamePattern {
    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => name == exact,
            Self::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }

    /// Reads a MetalLB-style anchored regular expression: `^name$` (exact), `^prefix.*` or
    /// `^prefix` (prefix). A `\.` stands for a dot. Anything else is refused rather than guessed.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let bad = || PatternError(pattern.to_owned());
        let body = pattern.strip_prefix('^').ok_or_else(bad)?;
        let (body, exact) = match body.strip_suffix('$') {
            Some(body) => (body, true),
            None => (body.strip_suffix(".*").unwrap_or(body), false),
        };
        let literal = body.replace("\\.", ".");
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
        if literal.is_empty() || !literal.chars().all(plain) || body.contains("..") {
            return Err(bad());
        }
        Ok(if exact {
            Self::Exact(literal)
        } else {
            Self::Prefix(literal)
        })
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => write!(f, "^{name}$"),
            Self::Prefix(prefix) => write!(f, "^{prefix}.*"),
        }
    }
}

/// A pattern that is not an anchored exact name or prefix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("interface pattern {0:?} is neither ^name$ nor ^prefix.*")]
pub struct PatternError(pub String);

/// Interfaces never used for announcing, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExcludeList {
    patterns: Vec<NamePattern>,
}

/// MetalLB's default exclude list (container, CNI and virtual bridges, loopback, tunnels).
pub const METALLB_EXCLUDED: [&str; 14] = [
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^nodelocaldns.*",
    "^lxc.*",
];

impl ExcludeList {
    /// MetalLB's default list ([`METALLB_EXCLUDED`]).
    pub fn metallb_default() -> Self {
        Self {
            patterns: METALLB_EXCLUDED
                .iter()
                .filter_map(|p| NamePattern::parse(p).ok())
                .collect(),
        }
    }

    /// Excludes nothing.
    pub fn none() -> Self {
        Self {
            patterns: Vec::new(),
        }
    }

    /// A list from MetalLB-style patterns (see [`NamePattern::parse`]).
    pub fn parse<S: AsRef<str>>(
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<Self, PatternError> {
        let patterns = patterns
            .into_iter()
            .map(|p| NamePattern::parse(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// The patterns.
    pub fn patterns(&self) -> &[NamePattern] {
        &self.patterns
    }

    /// Whether `name` is excluded.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(name))
    }
}

impl Default for ExcludeList {
    fn default() -> Self {
        Self::metallb_default()
    }
}

/// Which protocols an eligible interface answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Families {
    /// ARP for IPv4 (the interface has `IFF_BROADCAST`).
    pub arp: bool,
    /// NDP for IPv6 (IPv6 runs on it: it has a link-local address).
    pub ndp: bool,
}

/// Why an interface does not announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ineligible {
    /// Administratively down.
    Down,
    /// Up but without carrier.
    NoCarrier,
    /// The loopback interface.
    Loopback,
    /// `IFF_NOARP`.
    NoArp,
    /// No Ethernet MAC.
    NoMac,
    /// A bond or bridge port (this master index answers instead).
    Enslaved(u32),
    /// The name matches the exclude list.
    Excluded,
    /// Neither IPv4 broadcast nor IPv6 runs on it.
    NoFamily,
}

impl std::fmt::Display for Ineligible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Down => f.write_str("the interface is down"),
            Self::NoCarrier => f.write_str("the interface has no carrier (link down)"),
            Self::Loopback => f.write_str("it is the loopback interface"),
            Self::NoArp => f.write_str("ARP is off on the interface (NOARP)"),
            Self::NoMac => f.write_str("the interface has no Ethernet MAC address"),
            Self::Enslaved(master) => write!(
                f,
                "the interface is a port of bond or bridge interface {master}, which answers instead"
            ),
            Self::Excluded => {
                f.write_str("the interface's name is excluded (--exclude-interfaces)")
            }
            Self::NoFamily => f.write_str(
                "the interface has neither an IPv4 broadcast domain nor an IPv6 link-local address",
            ),
        }
    }
}

/// Whether `iface` may answer ARP/NDP, and for which families. Interfaces named by an
/// L2Advertisement are filtered per IP afterwards (`InterfaceChoice` in the announcer); the
/// exclude list applies to them too.
pub fn eligibility(iface: &Interface, exclude: &ExcludeList) -> Result<Families, Ineligible> {
    if iface.loopback {
        return Err(Ineligible::Loopback);
    }
    if !iface.up {
        return Err(Ineligible::Down);
    }
    if !iface.lower_up {
        return Err(Ineligible::NoCarrier);
    }
    if iface.noarp {
        return Err(Ineligible::NoArp);
    }
    if iface.mac.is_none() {
        return Err(Ineligible::NoMac);
    }
    if let Some(master) = iface.master {
        return Err(Ineligible::Enslaved(master));
    }
    if exclude.matches(&iface.name) {
        return Err(Ineligible::Excluded);
    }
    let families = Families {
        arp: iface.broadcast,
        ndp: iface.ipv6_link_local(),
    };
    if families.arp || families.ndp {
        Ok(families)
    } else {
        Err(Ineligible::NoFamily)
    }
}

/// Why the interface table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// Opening the netlink socket failed.
    #[error("opening the rtnetlink socket: {0}")]
    Socket(#[from] std::io::Error),
    /// A dump request failed.
    #[error("dumping links and addresses: {0}")]
    Dump(#[from] rtnetlink::Error),
}

/// Kernel receive buffer of the notification socket: large enough that a burst of changes
/// (hundreds of pods starting) does not overrun it.
const RECEIVE_BUFFER: usize = 4 << 20;
/// Wait before reconnecting after the netlink connection ends.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

type Messages = futures::channel::mpsc::UnboundedReceiver<(
    NetlinkMessage<RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

/// Subscribes, then dumps: notifications that race the dump queue up and are applied after it,
/// in order, and each carries a whole link or address, so the result converges.
async fn connect() -> Result<(Interfaces, Handle, Messages), NetlinkError> {
    let (mut connection, handle, messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
    ])?;
    if let Err(e) = connection
        .socket_mut()
        .socket_mut()
        .set_rx_buf_sz(RECEIVE_BUFFER)
    {
        debug!(error = %e, "could not raise the netlink receive buffer");
    }
    tokio::spawn(connection);
    let snapshot = dump(&handle).await?;
    Ok((snapshot, handle, messages))
}

async fn dump(handle: &Handle) -> Result<Interfaces, rtnetlink::Error> {
    let mut interfaces = Interfaces::default();
    let mut links = handle.link().get().execute();
    while let Some(link) = links.try_next().await? {
        interfaces.new_link(&link);
    }
    let mut addresses = handle.address().get().execute();
    while let Some(address) = addresses.try_next().await? {
        interfaces.address(&address, true);
    }
    Ok(interfaces)
}

/// The interface table of the calling thread's network namespace, kept current in a spawned
/// task until every receiver is dropped. Returns after the first dump; fails if that fails.
/// Later failures (the connection ending, a failed re-dump) are logged and retried.
pub async fn watch_interfaces() -> Result<watch::Receiver<Interfaces>, NetlinkError> {
    let (snapshot, handle, messages) = connect().await?;
    let (tx, rx) = watch::channel(snapshot);
    tokio::spawn(follow(tx, handle, messages));
    Ok(rx)
}

async fn follow(tx: watch::Sender<Interfaces>, mut handle: Handle, mut messages: Messages) {
    loop {
        let message = tokio::select! {
            () = tx.closed() => return,
            message = messages.next() => message,
        };
        match message.map(|(m, _)| m.payload) {
            Some(NetlinkPayload::InnerMessage(msg)) => {
                tx.send_if_modified(|interfaces| interfaces.apply(&msg));
            }
            Some(NetlinkPayload::Overrun(_)) => {
                warn!("netlink notifications were lost; dumping the interface table again");
                match dump(&handle).await {
                    Ok(fresh) => publish(&tx, fresh),
                    Err(e) => warn!(error = %e, "re-dumping the interface table failed"),
                }
            }
            Some(_) => {}
            None => {
                warn!("the netlink connection ended; reconnecting");
                loop {
                    tokio::select! {
                        () = tx.closed() => return,
                        () = tokio::time::sleep(RECONNECT_DELAY) => {}
                    }
                    match connect().await {
                        Ok((fresh, h, m)) => {
                            publish(&tx, fresh);
                            (handle, messages) = (h, m);
                            break;
                        }
                        Err(e) => warn!(error = %e, "reconnecting to rtnetlink failed"),
                    }
                }
            }
        }
    }
}

fn publish(tx: &watch::Sender<Interfaces>, fresh: Interfaces) {
    tx.send_if_modified(|current| {
        let changed = *current != fresh;
        *current = fresh;
        changed
    });
}

#[cfg(test)]
mod tests;
