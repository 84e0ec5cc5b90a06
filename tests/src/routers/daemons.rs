//! Each router's configuration file, generated from [`RouterConfig`], and its daemons started
//! with it inside the router's namespace.

use std::process::Command;

use anyhow::{Context as _, bail};

use super::{GOBGP_API, Router, RouterConfig, bfd, wait_file};

impl Router {
    pub(super) fn start_gobgp(&mut self, config: &RouterConfig) -> anyhow::Result<()> {
        let mut toml = format!(
            "[global.config]\n  as = {}\n  router-id = \"{}\"\n",
            config.asn, config.router_id
        );
        if config.multipath {
            toml.push_str("[global.use-multiple-paths.config]\n  enabled = true\n");
        }
        for n in &config.neighbors {
            let at = match &n.interface {
                Some(interface) => format!("neighbor-interface = \"{interface}\""),
                None => format!("neighbor-address = \"{}\"", n.address),
            };
            toml.push_str(&format!(
                "[[neighbors]]\n  [neighbors.config]\n    {at}\n    peer-as = {}\n",
                n.asn
            ));
            if let Some(password) = &n.password {
                toml.push_str(&format!("    auth-password = \"{password}\"\n"));
            }
            if n.passive {
                toml.push_str("  [neighbors.transport.config]\n    passive-mode = true\n");
            }
            if n.graceful_restart {
                toml.push_str("  [neighbors.graceful-restart.config]\n    enabled = true\n");
            }
            if n.ttl_security {
                toml.push_str(
                    "  [neighbors.ttl-security.config]\n    enabled = true\n    ttl-min = 255\n",
                );
            }
            if n.multihop {
                toml.push_str(
                    "  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = 2\n",
                );
            }
            for family in ["ipv4-unicast", "ipv6-unicast"] {
                toml.push_str(&format!(
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n"
                ));
                if n.graceful_restart {
                    toml.push_str(
                        "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n",
                    );
                }
            }
        }
        let file = self.path("gobgp.toml");
        std::fs::write(&file, toml)?;
        let file = file.to_string_lossy().into_owned();
        self.spawn(
            "gobgpd",
            "gobgpd",
            &["-f", &file, "--api-hosts", GOBGP_API, "-l", "info"],
        )
    }

    pub(super) fn start_bird(&mut self, config: &RouterConfig) -> anyhow::Result<()> {
        let mut conf = format!(
            "router id {};\nprotocol device {{}}\nprotocol kernel {{ ipv4 {{ export all; }}; merge paths {}; }}\n\
             protocol kernel {{ ipv6 {{ export all; }}; merge paths {}; }}\n",
            config.router_id,
            if config.multipath { "on" } else { "off" },
            if config.multipath { "on" } else { "off" },
        );
        if config.neighbors.iter().any(|n| n.bfd) {
            conf.push_str(&bfd::bird_protocol(config));
        }
        for (i, n) in config.neighbors.iter().enumerate() {
            // BIRD's multihop BFD needs the session's local address (the router ID here).
            let local = if n.multihop {
                format!("{} ", config.router_id)
            } else {
                String::new()
            };
            conf.push_str(&format!(
                "protocol bgp n{i} {{\n  local {local}as {};\n  neighbor {} as {};\n",
                config.asn, n.address, n.asn
            ));
            if let Some(interface) = &n.interface {
                conf.push_str(&format!("  interface \"{interface}\";\n"));
            }
            // After a session error BIRD waits 60 s (doubling to 300 s) before it accepts the
            // peer again; a test that breaks a session on purpose wants it back at once.
            conf.push_str("  error wait time 1, 5;\n");
            if n.passive {
                conf.push_str("  passive on;\n");
            }
            if let Some(password) = &n.password {
                conf.push_str(&format!("  password \"{password}\";\n"));
            }
            if n.bfd {
                conf.push_str("  bfd on;\n");
            }
            if n.ttl_security {
                conf.push_str("  ttl security on;\n");
            }
            // Multihop routes are resolved recursively: BIRD holds them, unreachable without
            // an IGP route to the next hop.
            if n.multihop {
                conf.push_str("  multihop 2;\n");
            }
            let extended = if n.interface.is_some() {
                " extended next hop on;"
            } else {
                ""
            };
            conf.push_str(&format!(
                "  ipv4 {{ import all; export none;{extended} }};\n  ipv6 {{ import all; export none; }};\n}}\n",
            ));
        }
        let file = self.path("bird.conf");
        std::fs::write(&file, conf)?;
        let (file, ctl, pid) = (
            file.to_string_lossy().into_owned(),
            self.path("bird.ctl").to_string_lossy().into_owned(),
            self.path("bird.pid").to_string_lossy().into_owned(),
        );
        self.spawn("bird", "bird", &["-f", "-c", &file, "-s", &ctl, "-P", &pid])
    }

    pub(super) fn start_frr(&mut self, config: &RouterConfig) -> anyhow::Result<()> {
        let mut conf = format!(
            "frr defaults traditional\nrouter bgp {}\n bgp router-id {}\n no bgp ebgp-requires-policy\n",
            config.asn, config.router_id
        );
        if config.multipath {
            conf.push_str(" bgp bestpath as-path multipath-relax\n");
        }
        for n in &config.neighbors {
            match &n.interface {
                Some(interface) => {
                    conf.push_str(&format!(
                        " neighbor {interface} interface remote-as {}\n",
                        n.asn
                    ));
                }
                None => conf.push_str(&format!(" neighbor {} remote-as {}\n", n.address, n.asn)),
            }
            if n.passive {
                conf.push_str(&format!(" neighbor {} passive\n", n.address));
            }
            if let Some(password) = &n.password {
                conf.push_str(&format!(" neighbor {} password {password}\n", n.address));
            }
            if n.bfd {
                conf.push_str(&bfd::frr_neighbor(n));
            }
            if n.ttl_security {
                conf.push_str(&format!(" neighbor {} ttl-security hops 1\n", n.address));
            }
            if n.multihop {
                conf.push_str(&format!(" neighbor {} ebgp-multihop 2\n", n.address));
            }
        }
        for family in ["ipv4", "ipv6"] {
            conf.push_str(&format!(" address-family {family} unicast\n"));
            for n in &config.neighbors {
                let name = n.interface.clone().unwrap_or_else(|| n.address.to_string());
                conf.push_str(&format!("  neighbor {name} activate\n"));
            }
            if config.multipath {
                conf.push_str("  maximum-paths 16\n");
            }
            conf.push_str(" exit-address-family\n");
        }
        conf.push_str(&bfd::frr_profiles(config));
        let state = self.path("frr");
        std::fs::create_dir_all(&state)?;
        std::fs::write(state.join("frr.conf"), conf)?;
        let status = Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(self.dir.path())
            .status()
            .context("chown for frr")?;
        if !status.success() {
            bail!("chown -R frr:frr {} failed", self.dir.path().display());
        }
        let s = state.to_string_lossy().into_owned();
        let (conf, zserv) = (format!("{s}/frr.conf"), format!("{s}/zserv.api"));
        let daemons: [(&'static str, &str); 3] = [
            ("zebra", "/usr/lib/frr/zebra"),
            ("bgpd", "/usr/lib/frr/bgpd"),
            ("bfdd", "/usr/lib/frr/bfdd"),
        ];
        for (name, program) in daemons {
            if name == "bfdd" && !config.neighbors.iter().any(|n| n.bfd) {
                continue;
            }
            let pid = format!("{s}/{name}.pid");
            self.spawn(
                name,
                program,
                &[
                    "-u",
                    "frr",
                    "-g",
                    "frr",
                    "-f",
                    &conf,
                    "-z",
                    &zserv,
                    "--vty_socket",
                    &s,
                    "-i",
                    &pid,
                ],
            )?;
            if name == "zebra" {
                // bgpd connects to zebra's socket; wait for it.
                wait_file(&state.join("zserv.api"))?;
            }
        }
        Ok(())
    }
}
