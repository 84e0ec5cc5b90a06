//! Writes the CRD YAML of every ferrolb kind into a directory (default `manifests/crds`), one
//! file per CRD, and the API reference `docs/reference.md` rendered from the same CRDs.
//! `ferrolb-crdgen --check` exits 1 if the committed files differ.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/crds"));
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("usage: ferrolb-crdgen [--check] [DIR]  (default DIR: manifests/crds)");
                return ExitCode::SUCCESS;
            }
            other => dir = PathBuf::from(other),
        }
    }
    let mut stale = Vec::new();
    let mut files = Vec::new();
    for crd in ferrolb_api::all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        match ferrolb_api::render_crd_yaml(&crd) {
            Ok(yaml) => files.push((dir.join(format!("{name}.yaml")), yaml)),
            Err(e) => {
                eprintln!("ferrolb-crdgen: cannot render {name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    files.push((
        dir.join("kustomization.yaml"),
        ferrolb_api::render_kustomization(),
    ));
    files.push((
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reference.md")),
        ferrolb_api::render_reference(),
    ));
    for (path, text) in files {
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        } else if let Err(e) = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text))
        {
            eprintln!("ferrolb-crdgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        } else {
            println!("wrote {}", path.display());
        }
    }
    if stale.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "ferrolb-crdgen: out of date (run `cargo run -p ferrolb-api --bin ferrolb-crdgen`): {}",
            stale.join(", ")
        );
        ExitCode::FAILURE
    }
}
