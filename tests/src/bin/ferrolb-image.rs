//! Writes the image archives of ferrolb and of its test cluster (see `ferrolb_tests::image`):
//!
//! ```text
//! ferrolb-image --out-dir DIR --controller BIN --speaker BIN --ca-bundle FILE [--pause BIN] [--echo BIN]
//!               [--reference REF]
//! ```
//!
//! `DIR/ferrolb-0.1.0.tar` is `ghcr.io/ferrolb/ferrolb:0.1.0`, or with `--reference R:T`,
//! `DIR/ferrolb-T.tar` is `R:T` (an earlier build, for the upgrade tests) (for `docker load -i`,
//! `kind load image-archive`, `ctr images import`); `DIR/pause.tar` and `DIR/echo.tar` are the
//! test cluster's sandbox and workload images. `tests/setup/images.sh` builds the binaries and
//! runs this.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use ferrolb_tests::image;

fn main() -> anyhow::Result<()> {
    let mut args = BTreeMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            bail!(
                "unexpected argument {flag}; flags are --out-dir, --controller, --speaker, --ca-bundle, --pause, --echo, --reference"
            );
        };
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        args.insert(name.to_owned(), PathBuf::from(value));
    }
    let get = |name: &str| {
        args.get(name)
            .cloned()
            .with_context(|| format!("--{name} is required"))
    };
    let out = get("out-dir")?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut ferrolb = image::ferrolb(&get("controller")?, &get("speaker")?, &get("ca-bundle")?);
    let mut ferrolb_file = "ferrolb-0.1.0.tar".to_owned();
    if let Some(reference) = args.get("reference") {
        let reference = reference.to_string_lossy().into_owned();
        let Some((_, tag)) = reference.rsplit_once(':').filter(|(_, t)| !t.contains('/')) else {
            bail!("--reference {reference} has no tag");
        };
        ferrolb_file = format!("ferrolb-{tag}.tar");
        ferrolb.reference = reference;
    }
    let mut specs = vec![(ferrolb_file.as_str(), ferrolb)];
    if let Some(pause) = args.get("pause") {
        specs.push(("pause.tar", image::pause(pause)));
    }
    if let Some(echo) = args.get("echo") {
        specs.push(("echo.tar", image::echo(echo)));
    }
    for (file, spec) in specs {
        let written = image::write_archive(&spec, &out.join(file))?;
        println!(
            "{}  {}  {}",
            written.path.display(),
            spec.reference,
            written.manifest_digest
        );
    }
    Ok(())
}
