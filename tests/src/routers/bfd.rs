//! BFD on the routers: FRR's `bfdd` (sessions registered by `bgpd` for `neighbor … bfd`, with
//! a `bfd profile` when timers are set, echo mode included) and BIRD's `protocol bfd` (timers
//! per interface, no echo), read back from `vtysh -c 'show bfd peers json'` and
//! `birdc show bfd sessions` into one [`BfdSession`] shape; FRR's packet counters from
//! `show bfd peers counters json`.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;

use super::{Neighbor, Router, RouterConfig, RouterKind};

/// BFD timers for a router's side of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdTimers {
    /// Required Min RX Interval.
    pub receive_interval: Duration,
    /// Desired Min TX Interval.
    pub transmit_interval: Duration,
    /// Detect Mult.
    pub detect_multiplier: u8,
    /// FRR only: `echo-mode`, with this as its echo transmit and receive intervals. `None`:
    /// no echo-mode, and FRR's default echo receive interval (50 ms).
    pub echo: Option<Duration>,
}

/// A BFD session as the router shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdSession {
    /// The peer.
    pub peer: IpAddr,
    /// `up`, `down`, `init` or `admindown`.
    pub state: String,
    /// How often the router sends to the peer, as agreed.
    pub transmit_interval: Option<Duration>,
    /// How long the router waits for the peer before declaring it down.
    pub detection_time: Option<Duration>,
    /// A multihop session (RFC 5883), when the router says (FRR does, BIRD does not).
    pub multihop: Option<bool>,
    /// Why the router's session last changed state (FRR's words: `ok`, `echo function
    /// failed`, …), when the router says.
    pub diagnostic: Option<String>,
    /// The diagnostic the peer last sent, when the router says.
    pub remote_diagnostic: Option<String>,
    /// The Required Min RX Interval the peer (we) advertised, when the router says.
    pub remote_receive_interval: Option<Duration>,
    /// The Required Min Echo RX Interval the peer (we) advertised, when the router says.
    pub remote_echo_receive_interval: Option<Duration>,
}

/// FRR's packet counters for one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BfdCounters {
    /// Control packets received.
    pub control_in: u64,
    /// Control packets sent.
    pub control_out: u64,
    /// Its own Echo packets back (looped by the peer's forwarding).
    pub echo_in: u64,
    /// Echo packets sent.
    pub echo_out: u64,
}

impl BfdSession {
    /// Whether the router has the session Up.
    pub fn is_up(&self) -> bool {
        self.state == "up"
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// BIRD's `protocol bfd`: every interface with the first timed neighbor's timers.
pub(super) fn bird_protocol(config: &RouterConfig) -> String {
    match config.neighbors.iter().find_map(|n| n.bfd_timers) {
        None => "protocol bfd {}\n".to_owned(),
        Some(t) => format!(
            "protocol bfd {{\n  interface \"*\" {{\n    min rx interval {} ms;\n    \
             min tx interval {} ms;\n    multiplier {};\n  }};\n}}\n",
            ms(t.receive_interval),
            ms(t.transmit_interval),
            t.detect_multiplier
        ),
    }
}

/// FRR's `neighbor … bfd` line, naming the neighbor's profile when it has timers.
pub(super) fn frr_neighbor(n: &Neighbor) -> String {
    let name = n.interface.clone().unwrap_or_else(|| n.address.to_string());
    match n.bfd_timers {
        None => format!(" neighbor {name} bfd\n"),
        Some(_) => format!(" neighbor {name} bfd profile {}\n", frr_profile_name(n)),
    }
}

fn frr_profile_name(n: &Neighbor) -> String {
    format!("n-{}", n.address).replace([':', '.'], "-")
}

/// FRR's `bfd` node: one profile per neighbor with timers (read by `bfdd`; the other daemons
/// skip it).
pub(super) fn frr_profiles(config: &RouterConfig) -> String {
    let mut out = String::new();
    for n in config.neighbors.iter().filter(|n| n.bfd) {
        if let Some(t) = n.bfd_timers {
            out.push_str(&format!(
                " profile {}\n  receive-interval {}\n  transmit-interval {}\n  \
                 detect-multiplier {}\n",
                frr_profile_name(n),
                ms(t.receive_interval),
                ms(t.transmit_interval),
                t.detect_multiplier
            ));
            if let Some(echo) = t.echo {
                out.push_str(&format!(
                    "  echo-mode\n  echo transmit-interval {}\n  echo receive-interval {}\n",
                    ms(echo),
                    ms(echo)
                ));
            }
            out.push_str(" exit\n");
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("bfd\n{out}exit\n")
    }
}

impl Router {
    /// The router's BFD sessions.
    pub fn bfd_sessions(&self) -> anyhow::Result<Vec<BfdSession>> {
        match self.kind {
            RouterKind::Gobgp => anyhow::bail!("GoBGP has no BFD"),
            RouterKind::Bird => parse_bird_bfd_sessions(&self.birdc(&["show", "bfd", "sessions"])?),
            RouterKind::Frr => parse_frr_bfd_peers(&self.vtysh("show bfd peers json")?),
        }
    }

    /// The router's BFD session with `peer`, if it has one.
    pub fn bfd_session(&self, peer: IpAddr) -> anyhow::Result<Option<BfdSession>> {
        Ok(self.bfd_sessions()?.into_iter().find(|s| s.peer == peer))
    }

    /// What the router's CLI says about its BFD sessions, for logs and failure messages:
    /// FRR's `show bfd peers` and `show bfd peers counters` (JSON), BIRD's `show bfd sessions`.
    pub fn bfd_report(&self) -> anyhow::Result<String> {
        match self.kind {
            RouterKind::Gobgp => anyhow::bail!("GoBGP has no BFD"),
            RouterKind::Bird => self.birdc(&["show", "bfd", "sessions"]),
            RouterKind::Frr => Ok(format!(
                "{}\n{}",
                self.vtysh("show bfd peers json")?,
                self.vtysh("show bfd peers counters json")?
            )),
        }
    }

    /// The packet counters of the router's BFD session with `peer` (FRR only).
    pub fn bfd_counters(&self, peer: IpAddr) -> anyhow::Result<Option<BfdCounters>> {
        match self.kind {
            RouterKind::Frr => Ok(parse_frr_bfd_counters(
                &self.vtysh("show bfd peers counters json")?,
            )?
            .into_iter()
            .find_map(|(p, c)| (p == peer).then_some(c))),
            other => anyhow::bail!("{other}: no BFD packet counters"),
        }
    }
}

/// Parses FRR's `show bfd peers counters json`: per session its peer and packet counts.
pub fn parse_frr_bfd_counters(json: &str) -> anyhow::Result<Vec<(IpAddr, BfdCounters)>> {
    let v: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("parsing {json}"))?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|peer| {
            let address = peer["peer"].as_str()?.parse().ok()?;
            let count = |name: &str| peer[name].as_u64().unwrap_or_default();
            Some((
                address,
                BfdCounters {
                    control_in: count("control-packet-input"),
                    control_out: count("control-packet-output"),
                    echo_in: count("echo-packet-input"),
                    echo_out: count("echo-packet-output"),
                },
            ))
        })
        .collect())
}

/// Parses FRR's `show bfd peers json`: an array of sessions with the local timers
/// (`receive-interval`, `transmit-interval`, in ms) and those the peer announced (`remote-…`),
/// from which the agreed values follow (RFC 5880 §6.8.2, §6.8.4).
pub fn parse_frr_bfd_peers(json: &str) -> anyhow::Result<Vec<BfdSession>> {
    let v: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("parsing {json}"))?;
    let mut sessions = Vec::new();
    for peer in v.as_array().into_iter().flatten() {
        let Some(address) = peer["peer"].as_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let field = |name: &str| peer[name].as_u64().map(Duration::from_millis);
        let agreed = |a: Option<Duration>, b: Option<Duration>| Some(a?.max(b?));
        let transmit_interval =
            agreed(field("transmit-interval"), field("remote-receive-interval"));
        let detection_time = agreed(field("receive-interval"), field("remote-transmit-interval"))
            .zip(peer["remote-detect-multiplier"].as_u64())
            .map(|(interval, mult)| interval * u32::try_from(mult).unwrap_or(0));
        sessions.push(BfdSession {
            peer: address,
            state: peer["status"]
                .as_str()
                .unwrap_or_default()
                .replace("shutdown", "admindown"),
            transmit_interval,
            detection_time,
            multihop: peer["multihop"].as_bool(),
            diagnostic: peer["diagnostic"].as_str().map(str::to_owned),
            remote_diagnostic: peer["remote-diagnostic"].as_str().map(str::to_owned),
            remote_receive_interval: field("remote-receive-interval"),
            remote_echo_receive_interval: field("remote-echo-receive-interval"),
        });
    }
    Ok(sessions)
}

/// Parses BIRD's `show bfd sessions`: per protocol a header line, then one line per session —
/// address, interface, state, since (date and/or time), then the agreed transmit interval and
/// the detection time in seconds.
pub fn parse_bird_bfd_sessions(text: &str) -> anyhow::Result<Vec<BfdSession>> {
    let mut sessions = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(peer) = words.first().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        let Some(state) = words.get(2) else {
            continue;
        };
        let seconds = |w: Option<&&str>| {
            w.and_then(|w| w.parse::<f64>().ok())
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
        };
        let n = words.len();
        sessions.push(BfdSession {
            peer,
            state: state.to_lowercase(),
            transmit_interval: seconds(words.get(n.wrapping_sub(2))),
            detection_time: seconds(words.get(n.wrapping_sub(1))),
            multihop: None,
            diagnostic: None,
            remote_diagnostic: None,
            remote_receive_interval: None,
            remote_echo_receive_interval: None,
        });
    }
    Ok(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frr_peers_json_gives_the_agreed_timers_each_way() {
        // Captured from FRR 8.4 bfdd: its profile 100/100 ×5, ours 400 in, 200 out, ×3.
        let json = r#"[{"multihop":false,"peer":"192.0.2.1","local":"192.0.2.2",
            "vrf":"default","interface":"eth0","id":3233288791,"remote-id":2994026215,
            "passive-mode":false,"status":"up","uptime":0,"diagnostic":"ok",
            "remote-diagnostic":"ok","receive-interval":100,"transmit-interval":100,
            "echo-receive-interval":50,"echo-transmit-interval":0,"detect-multiplier":5,
            "remote-receive-interval":400,"remote-transmit-interval":200,
            "remote-echo-receive-interval":0,"remote-detect-multiplier":3,
            "rtt-min":0,"rtt-avg":0,"rtt-max":0}]"#;
        let sessions = parse_frr_bfd_peers(json).expect("parses");
        assert_eq!(
            sessions,
            vec![BfdSession {
                peer: "192.0.2.1".parse().expect("an address"),
                state: "up".to_owned(),
                // max(its 100, our 400); our 3 × max(its 100, our 200).
                transmit_interval: Some(Duration::from_millis(400)),
                detection_time: Some(Duration::from_millis(600)),
                multihop: Some(false),
                diagnostic: Some("ok".to_owned()),
                remote_diagnostic: Some("ok".to_owned()),
                remote_receive_interval: Some(Duration::from_millis(400)),
                remote_echo_receive_interval: Some(Duration::ZERO),
            }]
        );
        assert!(sessions[0].is_up());
    }

    #[test]
    fn frr_peers_and_counters_json_show_both_ends_echoing() {
        // Captured from FRR 8.4 bfdd with echo-mode at 100 ms, against ours echoing at 100 ms
        // (×5) and asking for Control packets once a second (tests/tests/bfd_echo.rs).
        let peers = r#"[{"multihop":false,"peer":"192.0.2.1","local":"192.0.2.2",
            "vrf":"default","interface":"eth0","id":2445858166,"remote-id":2211792828,
            "passive-mode":false,"status":"up","uptime":7,"diagnostic":"ok",
            "remote-diagnostic":"ok","receive-interval":300,"transmit-interval":300,
            "echo-receive-interval":100,"echo-transmit-interval":100,"detect-multiplier":3,
            "remote-receive-interval":1000,"remote-transmit-interval":300,
            "remote-echo-receive-interval":100,"remote-detect-multiplier":5,
            "rtt-min":52,"rtt-avg":83,"rtt-max":101}]"#;
        let session = &parse_frr_bfd_peers(peers).expect("parses")[0];
        assert_eq!(session.transmit_interval, Some(Duration::from_secs(1)));
        assert_eq!(
            session.remote_echo_receive_interval,
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            session.remote_receive_interval,
            Some(Duration::from_secs(1))
        );
        let counters = r#"[{"multihop":false,"peer":"192.0.2.1","local":"192.0.2.2",
            "vrf":"default","interface":"eth0","control-packet-input":29,
            "control-packet-output":11,"echo-packet-input":76,"echo-packet-output":76,
            "session-up":1,"session-down":0,"zebra-notifications":2}]"#;
        assert_eq!(
            parse_frr_bfd_counters(counters).expect("parses"),
            vec![(
                "192.0.2.1".parse().expect("an address"),
                BfdCounters {
                    control_in: 29,
                    control_out: 11,
                    echo_in: 76,
                    echo_out: 76,
                }
            )]
        );
    }

    #[test]
    fn bird_sessions_text_gives_state_interval_and_timeout() {
        // Captured from BIRD 2.0.12 (`birdc show bfd sessions`), before and after Up.
        let text = "BIRD 2.0.12 ready.\nbfd1:\n\
            IP address                Interface  State      Since         Interval  Timeout\n\
            192.0.2.1                 eth0       Init       21:34:02.352    1.000    3.000\n\
            2001:db8:0:1::1           eth0       Up         21:34:03.157    0.400    0.600\n";
        let sessions = parse_bird_bfd_sessions(text).expect("parses");
        assert_eq!(sessions.len(), 2, "{sessions:?}");
        assert_eq!(sessions[0].state, "init");
        assert_eq!(sessions[0].transmit_interval, Some(Duration::from_secs(1)));
        assert_eq!(sessions[0].detection_time, Some(Duration::from_secs(3)));
        assert!(sessions[1].is_up());
        assert_eq!(
            sessions[1].peer,
            "2001:db8:0:1::1".parse::<IpAddr>().expect("an address")
        );
        assert_eq!(
            sessions[1].transmit_interval,
            Some(Duration::from_millis(400))
        );
        assert_eq!(sessions[1].detection_time, Some(Duration::from_millis(600)));
    }

    #[test]
    fn timers_render_as_a_bird_interface_block_and_an_frr_profile() {
        let mut n = Neighbor::passive("192.0.2.1".parse().expect("an address"), 65001);
        n.bfd = true;
        n.bfd_timers = Some(BfdTimers {
            receive_interval: Duration::from_millis(100),
            transmit_interval: Duration::from_millis(200),
            detect_multiplier: 5,
            echo: Some(Duration::from_millis(50)),
        });
        let config = RouterConfig {
            asn: 64512,
            router_id: "192.0.2.2".parse().expect("an address"),
            neighbors: vec![n.clone()],
            multipath: false,
        };
        let bird = bird_protocol(&config);
        assert!(bird.contains("min rx interval 100 ms;"), "{bird}");
        assert!(bird.contains("min tx interval 200 ms;"), "{bird}");
        assert!(bird.contains("multiplier 5;"), "{bird}");
        assert_eq!(
            frr_neighbor(&n),
            " neighbor 192.0.2.1 bfd profile n-192-0-2-1\n"
        );
        let frr = frr_profiles(&config);
        assert!(frr.starts_with("bfd\n profile n-192-0-2-1\n"), "{frr}");
        assert!(frr.contains("  receive-interval 100\n"), "{frr}");
        assert!(frr.contains("  transmit-interval 200\n"), "{frr}");
        assert!(frr.contains("  detect-multiplier 5\n"), "{frr}");
        assert!(
            frr.contains(
                "  echo-mode\n  echo transmit-interval 50\n  echo receive-interval 50\n exit\n"
            ),
            "{frr}"
        );
        n.bfd_timers = None;
        assert_eq!(frr_neighbor(&n), " neighbor 192.0.2.1 bfd\n");
    }
}
