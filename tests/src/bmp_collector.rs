//! pmacct's BMP collector (`pmbmpd`, Debian's `pmacct`) in a test's namespace, writing every
//! message it decodes to a JSON-lines log the test reads: a real collector's view of what the
//! speaker exports.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use crate::apiserver::Process;
use crate::netns::Netns;

/// The port the collector listens on (pmacct's examples use 1790).
pub const PORT: u16 = 1790;

/// A running `pmbmpd`; killed when dropped.
#[derive(Debug)]
pub struct Pmbmpd {
    _dir: tempfile::TempDir,
    msglog: PathBuf,
    process: Process,
}

impl Pmbmpd {
    /// Starts the collector in `ns`, listening on `ip`.
    pub fn start(ns: &Netns, ip: IpAddr) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("ferrolb-pmbmpd-")
            .tempdir()
            .context("a directory for pmbmpd")?;
        let msglog = dir.path().join("msglog.json");
        let config = dir.path().join("pmbmpd.conf");
        std::fs::write(
            &config,
            format!(
                "bmp_daemon_ip: {ip}\nbmp_daemon_port: {PORT}\nbmp_daemon_msglog_file: {}\n\
                 bmp_daemon_msglog_output: json\n",
                msglog.display()
            ),
        )
        .context("writing pmbmpd.conf")?;
        let mut cmd = ns.command("pmbmpd");
        cmd.arg("-f").arg(&config);
        let process = Process::spawn("pmbmpd", cmd, &dir.path().join("pmbmpd.log"))?;
        Ok(Self {
            _dir: dir,
            msglog,
            process,
        })
    }

    /// Every message logged so far (pmbmpd writes one JSON object per line).
    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.msglog)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The messages logged with `bmp_msg_type` = `kind`.
    pub fn of_type(&self, kind: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| m["bmp_msg_type"] == kind)
            .collect()
    }

    /// The collector's own log, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "pmbmpd log:\n{}\nmessages:\n{}",
            self.process.log_tail(20),
            std::fs::read_to_string(&self.msglog).unwrap_or_default()
        )
    }
}
