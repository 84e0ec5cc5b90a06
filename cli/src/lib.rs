//! `kubectl ferrolb`: explains what ferrolb decided and why, simulates what a change would move,
//! migrates MetalLB configuration, and shows status and versions. Every decision it shows comes from the same
//! pure code the binaries run (the controller's allocator through [`ferrolb_controller::replay`],
//! the speaker's election and plan) — never a re-implementation. [`cluster`] reads the inputs
//! once; the subcommands are pure functions of them.

pub mod cluster;
pub mod explain;
pub mod migrate;
pub mod simulate;
pub mod status;
pub mod version;

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    #[default]
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Prints `value` as JSON or YAML, or `text()` for people.
pub fn print<T: serde::Serialize>(
    format: Format,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<String> {
    Ok(match format {
        Format::Text => text(value),
        Format::Json => serde_json::to_string_pretty(value)? + "\n",
        Format::Yaml => serde_saphyr::to_string(value)?,
    })
}
