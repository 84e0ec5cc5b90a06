//! What an operator does at a running router's CLI: originate routes with the path attributes a
//! test wants to see on the wire, ask a neighbor for a route refresh, shut a session down with
//! a message, and read the router's version.
//!
//! Routes are originated in each router's own idiom:
//! - GoBGP: `gobgp global rib add <prefix> origin … med … community … large-community …`
//!   through its API;
//! - BIRD: a `protocol static` per family and an export filter on the BGP channels that sets
//!   `bgp_origin`, `bgp_med`, `bgp_community` and `bgp_large_community` per prefix, loaded with
//!   `birdc configure`;
//! - FRR: a `network` statement per prefix with a route-map that sets `origin`, `metric`,
//!   `community` and `large-community`, entered through `vtysh`.
//!
//! [`Router::originate`] is level-triggered: it takes the whole set and brings the router to it,
//! withdrawing what is no longer there.

use std::time::{Duration, Instant};

use ferrolb_bgp::packet::{Community, LargeCommunity, Origin};

use super::*;

/// How long a daemon may take to answer its CLI after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A route the router originates (as if it were connected or static there), with the
/// attributes it puts on it when it advertises it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginatedRoute {
    /// The prefix.
    pub prefix: IpNet,
    /// ORIGIN.
    pub origin: Origin,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
}

impl OriginatedRoute {
    fn is_ipv4(&self) -> bool {
        self.prefix.addr().is_ipv4()
    }

    /// The route-map FRR attaches to this route's `network` statement.
    fn frr_route_map(&self) -> String {
        let name: String = self
            .prefix
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!("ORIGINATE-{name}")
    }
}

fn origin_word(origin: Origin) -> &'static str {
    match origin {
        Origin::Igp => "igp",
        Origin::Egp => "egp",
        Origin::Incomplete => "incomplete",
    }
}

fn joined<T: fmt::Display>(items: &[T], separator: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(separator)
}

impl Router {
    /// Makes the router originate exactly `routes`: new ones are announced to its neighbors,
    /// changed ones announced again, and those no longer listed withdrawn.
    pub fn originate(&mut self, routes: &[OriginatedRoute]) -> anyhow::Result<()> {
        let old = std::mem::replace(&mut self.originated, routes.to_vec());
        self.apply_originated(&old)
    }

    /// After the daemons (re)started: originates the routes again.
    pub(super) fn restore_originated(&mut self) -> anyhow::Result<()> {
        if self.originated.is_empty() {
            return Ok(());
        }
        self.apply_originated(&[])
    }

    fn apply_originated(&self, old: &[OriginatedRoute]) -> anyhow::Result<()> {
        let gone: Vec<&OriginatedRoute> = old
            .iter()
            .filter(|o| !self.originated.iter().any(|n| n.prefix == o.prefix))
            .collect();
        let new: Vec<&OriginatedRoute> = self
            .originated
            .iter()
            .filter(|n| !old.contains(n))
            .collect();
        match self.kind {
            RouterKind::Gobgp => self.gobgp_originate(&gone, &new),
            RouterKind::Bird => self.bird_originate(),
            RouterKind::Frr => self.frr_originate(&gone, &new),
        }
    }

    fn gobgp_originate(
        &self,
        gone: &[&OriginatedRoute],
        new: &[&OriginatedRoute],
    ) -> anyhow::Result<()> {
        retry_until_ready("gobgpd", || self.gobgp(&["global"]))?;
        for route in gone {
            let family = if route.is_ipv4() { "ipv4" } else { "ipv6" };
            let prefix = route.prefix.to_string();
            self.gobgp(&["global", "rib", "-a", family, "del", &prefix])?;
        }
        for route in new {
            let family = if route.is_ipv4() { "ipv4" } else { "ipv6" };
            let prefix = route.prefix.to_string();
            let mut args = vec![
                "global".to_owned(),
                "rib".to_owned(),
                "-a".to_owned(),
                family.to_owned(),
                "add".to_owned(),
                prefix,
                "origin".to_owned(),
                origin_word(route.origin).to_owned(),
            ];
            if let Some(med) = route.med {
                args.extend(["med".to_owned(), med.to_string()]);
            }
            if !route.communities.is_empty() {
                args.extend(["community".to_owned(), joined(&route.communities, ",")]);
            }
            if !route.large_communities.is_empty() {
                args.extend([
                    "large-community".to_owned(),
                    joined(&route.large_communities, ","),
                ]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.gobgp(&args)?;
        }
        Ok(())
    }

    /// BIRD's configuration with the originated routes: `bird.conf` as [`Router::start`]
    /// wrote it, the BGP channels exporting through a filter that sets the attributes, and
    /// one static protocol per family. Written beside it and loaded with `birdc configure`.
    fn bird_originate(&self) -> anyhow::Result<()> {
        let base = std::fs::read_to_string(self.path("bird.conf"))?;
        let conf = bird_conf_with(&base, &self.originated)?;
        let file = self.path("bird-originated.conf");
        std::fs::write(&file, conf)?;
        let quoted = format!("\"{}\"", file.display());
        let output = retry_until_ready("bird", || self.birdc(&["configure", &quoted]))?;
        if !output.contains("Reconfigured") && !output.contains("Reconfiguration in progress") {
            bail!("birdc configure {quoted}: {output}");
        }
        Ok(())
    }

    fn frr_originate(
        &self,
        gone: &[&OriginatedRoute],
        new: &[&OriginatedRoute],
    ) -> anyhow::Result<()> {
        retry_until_ready("bgpd", || self.vtysh("show bgp summary"))?;
        let mut lines: Vec<String> = Vec::new();
        for route in new {
            let map = route.frr_route_map();
            lines.push(format!("no route-map {map}"));
            lines.push(format!("route-map {map} permit 10"));
            lines.push(format!("set origin {}", origin_word(route.origin)));
            if let Some(med) = route.med {
                lines.push(format!("set metric {med}"));
            }
            if !route.communities.is_empty() {
                lines.push(format!("set community {}", joined(&route.communities, " ")));
            }
            if !route.large_communities.is_empty() {
                lines.push(format!(
                    "set large-community {}",
                    joined(&route.large_communities, " ")
                ));
            }
            lines.push("exit".to_owned());
        }
        lines.push(format!("router bgp {}", self.config.asn));
        // The originated prefixes are in no routing table: announce them anyway.
        lines.push("no bgp network import-check".to_owned());
        for family in ["ipv4", "ipv6"] {
            let of_family = |r: &&&OriginatedRoute| r.is_ipv4() == (family == "ipv4");
            lines.push(format!("address-family {family} unicast"));
            for route in gone.iter().filter(of_family) {
                lines.push(format!("no network {}", route.prefix));
            }
            for route in new.iter().filter(of_family) {
                lines.push(format!(
                    "network {} route-map {}",
                    route.prefix,
                    route.frr_route_map()
                ));
            }
            lines.push("exit-address-family".to_owned());
        }
        lines.push("exit".to_owned());
        for route in gone {
            lines.push(format!("no route-map {}", route.frr_route_map()));
        }
        self.vtysh_configure(&lines)
    }

    /// Runs `lines` in vtysh's configuration mode, in one session.
    fn vtysh_configure(&self, lines: &[String]) -> anyhow::Result<()> {
        let socket = self.path("frr").to_string_lossy().into_owned();
        let mut cmd = vec!["vtysh", "--vty_socket", &socket, "-c", "configure terminal"];
        for line in lines {
            cmd.extend(["-c", line.as_str()]);
        }
        let output = self.ns.output(&cmd)?;
        if output.contains('%') {
            // vtysh reports errors ("% Unknown command", "% Malformed …") on stdout.
            bail!("vtysh {lines:?}: {output}");
        }
        Ok(())
    }

    /// Makes the router ask `neighbor` to send its routes again (ROUTE-REFRESH, RFC 2918):
    /// `birdc reload in`, `clear bgp … soft in`. `Ok(false)` for GoBGP, which never asks: it
    /// keeps every route it received (Adj-RIB-In) and `softresetin` re-applies its import
    /// policy from there.
    pub fn request_route_refresh(&self, neighbor: IpAddr) -> anyhow::Result<bool> {
        match self.kind {
            RouterKind::Gobgp => Ok(false),
            RouterKind::Bird => {
                let name = self.bird_protocol(neighbor)?;
                let output = self.birdc(&["reload", "in", &name])?;
                if !output.contains("reload") && !output.contains("Reload") {
                    bail!("birdc reload in {name}: {output}");
                }
                Ok(true)
            }
            RouterKind::Frr => {
                self.vtysh(&format!("clear bgp {neighbor} soft in"))?;
                Ok(true)
            }
        }
    }

    /// The router's name and version as it reports them: `gobgpd --version`, `bird --version`,
    /// `vtysh -c 'show version'` (its first line, without the host name), e.g. `FRRouting 8.4.4`.
    pub fn version(&self) -> anyhow::Result<String> {
        let (name, text) = match self.kind {
            RouterKind::Gobgp => ("GoBGP", command_output("gobgpd", &["--version"])?),
            RouterKind::Bird => ("BIRD", command_output("bird", &["--version"])?),
            RouterKind::Frr => ("FRRouting", self.vtysh("show version")?),
        };
        // "gobgpd version 3.10.0", "BIRD version 2.0.12", "FRRouting 8.4.4 (host) on Linux…".
        let words: Vec<&str> = text.split_whitespace().collect();
        let version = match self.kind {
            RouterKind::Gobgp | RouterKind::Bird => {
                words.iter().skip_while(|w| **w != "version").nth(1)
            }
            RouterKind::Frr => words.iter().skip_while(|w| **w != "FRRouting").nth(1),
        };
        let version = version.with_context(|| format!("no version in {text:?}"))?;
        Ok(format!("{name} {version}"))
    }

    /// Takes the session with `neighbor` down administratively: the router sends Cease /
    /// Administrative Shutdown with `message` as its RFC 9003 shutdown communication, and does
    /// not come back.
    pub fn shut_down_session(&self, neighbor: IpAddr, message: &str) -> anyhow::Result<()> {
        let address = neighbor.to_string();
        match self.kind {
            RouterKind::Gobgp => self
                .gobgp(&["neighbor", &address, "shutdown", "--reason", message])
                .map(drop),
            RouterKind::Bird => {
                let name = self.bird_protocol(neighbor)?;
                let quoted = format!("\"{message}\"");
                let output = self.birdc(&["disable", &name, &quoted])?;
                if !output.contains("disabled") {
                    bail!("birdc disable {name}: {output}");
                }
                Ok(())
            }
            RouterKind::Frr => self.vtysh_configure(&[
                format!("router bgp {}", self.config.asn),
                format!("neighbor {address} shutdown message {message}"),
            ]),
        }
    }
}

/// `base` (the configuration [`Router::start`] wrote) with `routes` originated: the filter
/// and the static protocols go before the first BGP protocol, whose channels then export
/// through the filter instead of exporting nothing.
fn bird_conf_with(base: &str, routes: &[OriginatedRoute]) -> anyhow::Result<String> {
    let at = base
        .find("protocol bgp ")
        .context("bird.conf has no BGP protocol")?;
    let mut block = String::new();
    block.push_str("filter ferrolb_originated {\n  if source != RTS_STATIC then reject;\n");
    for route in routes {
        block.push_str(&format!("  if net = {} then {{\n", route.prefix));
        let origin = match route.origin {
            Origin::Igp => "ORIGIN_IGP",
            Origin::Egp => "ORIGIN_EGP",
            Origin::Incomplete => "ORIGIN_INCOMPLETE",
        };
        block.push_str(&format!("    bgp_origin = {origin};\n"));
        if let Some(med) = route.med {
            block.push_str(&format!("    bgp_med = {med};\n"));
        }
        for c in &route.communities {
            block.push_str(&format!(
                "    bgp_community.add(({},{}));\n",
                c.0 >> 16,
                c.0 & 0xffff
            ));
        }
        for c in &route.large_communities {
            block.push_str(&format!(
                "    bgp_large_community.add(({},{},{}));\n",
                c.global_admin, c.local_data1, c.local_data2
            ));
        }
        block.push_str("  }\n");
    }
    block.push_str("  accept;\n}\n");
    for (name, family, v4) in [
        ("ferrolb_static4", "ipv4", true),
        ("ferrolb_static6", "ipv6", false),
    ] {
        block.push_str(&format!("protocol static {name} {{\n  {family};\n"));
        for route in routes.iter().filter(|r| r.is_ipv4() == v4) {
            block.push_str(&format!("  route {} blackhole;\n", route.prefix));
        }
        block.push_str("}\n");
    }
    let mut conf = String::with_capacity(base.len() + block.len());
    conf.push_str(&base[..at]);
    conf.push_str(&block);
    conf.push_str(&base[at..].replace("export none;", "export filter ferrolb_originated;"));
    Ok(conf)
}

/// Runs `program` with `args` (outside any namespace); its stdout and stderr together (BIRD
/// prints its version on stderr).
fn command_output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(text)
}

/// Calls `ask` until it succeeds (the daemon answers its CLI) or [`READY_TIMEOUT`] passes.
fn retry_until_ready(
    daemon: &str,
    mut ask: impl FnMut() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match ask() {
            Ok(output) => return Ok(output),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("{daemon} did not answer")));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_exports_originated_routes_through_a_filter_that_sets_their_attributes() {
        let base = "router id 192.0.2.2;\nprotocol device {}\nprotocol bgp n0 {\n  local as 64512;\n  \
                    ipv4 { import all; export none; };\n  ipv6 { import all; export none; };\n}\n";
        let routes = [OriginatedRoute {
            prefix: "198.51.100.0/24".parse().expect("prefix"),
            origin: Origin::Igp,
            med: Some(50),
            communities: vec![Community::new(64512, 100)],
            large_communities: vec![LargeCommunity {
                global_admin: 64512,
                local_data1: 1,
                local_data2: 2,
            }],
        }];
        let conf = bird_conf_with(base, &routes).expect("a BGP protocol");
        let filter = conf.find("filter ferrolb_originated").expect("filter");
        assert!(
            filter < conf.find("protocol bgp n0").expect("bgp"),
            "{conf}"
        );
        for line in [
            "if net = 198.51.100.0/24 then {",
            "bgp_origin = ORIGIN_IGP;",
            "bgp_med = 50;",
            "bgp_community.add((64512,100));",
            "bgp_large_community.add((64512,1,2));",
            "route 198.51.100.0/24 blackhole;",
            "ipv4 { import all; export filter ferrolb_originated; };",
        ] {
            assert!(conf.contains(line), "{line} missing from\n{conf}");
        }
        assert!(!conf.contains("export none"), "{conf}");
    }
}
