//! The image archives of `tests/setup/images.sh` (`ferrolb_tests::image`): the ferrolb image is
//! what the Dockerfile builds, and an archive is what importers check (digests, sizes, names).

use std::path::Path;

use ferrolb_tests::fixtures::repo_path;
use ferrolb_tests::image::{self, FERROLB_IMAGE, read_tar, write_tar};

/// The final stage of the Dockerfile: the destinations of its COPY lines, USER and ENTRYPOINT.
struct Dockerfile {
    files: Vec<String>,
    user: String,
    entrypoint: serde_json::Value,
}

fn dockerfile() -> Dockerfile {
    let text =
        std::fs::read_to_string(repo_path("Dockerfile")).expect("image archive test fixture");
    let last_stage = text
        .rsplit("\nFROM ")
        .next()
        .expect("image archive test fixture");
    let mut files = Vec::new();
    let (mut user, mut entrypoint) = (String::new(), serde_json::Value::Null);
    for line in last_stage.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("COPY") => {
                let words: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                let (dest, sources) = words.split_last().expect("image archive test fixture");
                for source in sources {
                    let name = Path::new(source)
                        .file_name()
                        .expect("image archive test fixture")
                        .to_string_lossy();
                    files.push(if dest.ends_with('/') {
                        format!("{dest}{name}")
                    } else {
                        (*dest).to_owned()
                    });
                }
            }
            Some("USER") => user = words.collect(),
            Some("ENTRYPOINT") => {
                entrypoint = serde_json::from_str(line.trim_start_matches("ENTRYPOINT"))
                    .expect("image archive test fixture");
            }
            _ => {}
        }
    }
    files.sort();
    Dockerfile {
        files,
        user,
        entrypoint,
    }
}

/// A ferrolb archive from stand-in binaries.
fn ferrolb_archive(dir: &Path) -> std::path::PathBuf {
    for (name, contents) in [
        ("controller", "controller binary"),
        ("speaker", "speaker binary"),
        ("ca.crt", "certificates"),
    ] {
        std::fs::write(dir.join(name), contents).expect("image archive test fixture");
    }
    let spec = image::ferrolb(
        &dir.join("controller"),
        &dir.join("speaker"),
        &dir.join("ca.crt"),
    );
    let out = dir.join("ferrolb.tar");
    image::write_archive(&spec, &out).expect("image archive test fixture");
    out
}

#[test]
fn the_ferrolb_archive_holds_what_the_dockerfile_builds() {
    let dir = tempfile::tempdir().expect("image archive test fixture");
    let inspected =
        image::inspect_archive(&ferrolb_archive(dir.path())).expect("image archive test fixture");
    let docker = dockerfile();
    assert_eq!(inspected.reference, FERROLB_IMAGE);
    assert_eq!(inspected.repo_tags, vec![FERROLB_IMAGE.to_owned()]);
    let files: Vec<String> = inspected
        .layer
        .iter()
        .filter(|e| !e.is_dir())
        .map(|e| format!("/{}", e.path))
        .collect();
    assert_eq!(
        files, docker.files,
        "the layer's files are not the Dockerfile's"
    );
    assert_eq!(inspected.config["User"], docker.user.as_str());
    assert_eq!(inspected.config["Entrypoint"], docker.entrypoint);
    let controller = inspected
        .layer
        .iter()
        .find(|e| e.path == "ferrolb-controller")
        .expect("image archive test fixture");
    assert_eq!(controller.mode, 0o755);
    assert_eq!(controller.contents, b"controller binary");
    // Directories exist for the CA bundle, as COPY creates them.
    let dirs: Vec<&str> = inspected
        .layer
        .iter()
        .filter(|e| e.is_dir())
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(dirs, ["etc/", "etc/ssl/", "etc/ssl/certs/"]);
}

#[test]
fn the_same_inputs_give_the_same_digests() {
    let (a, b) = (
        tempfile::tempdir().expect("image archive test fixture"),
        tempfile::tempdir().expect("image archive test fixture"),
    );
    let (a, b) = (ferrolb_archive(a.path()), ferrolb_archive(b.path()));
    assert_eq!(
        std::fs::read(a).expect("image archive test fixture"),
        std::fs::read(b).expect("image archive test fixture")
    );
}

#[test]
fn an_archive_whose_layer_was_altered_is_refused() {
    let dir = tempfile::tempdir().expect("image archive test fixture");
    let path = ferrolb_archive(dir.path());
    let mut entries = read_tar(&std::fs::read(&path).expect("image archive test fixture"))
        .expect("image archive test fixture");
    let layer = entries
        .iter_mut()
        .filter(|e| e.path.starts_with("blobs/sha256/"))
        .max_by_key(|e| e.contents.len())
        .expect("image archive test fixture");
    let last = layer.contents.len() - 1100;
    layer.contents[last] ^= 1;
    std::fs::write(
        &path,
        write_tar(&entries).expect("image archive test fixture"),
    )
    .expect("image archive test fixture");
    let err = image::inspect_archive(&path).expect_err("an altered layer must be refused");
    assert!(format!("{err:#}").contains("digest"), "{err:#}");
}

#[test]
fn gnu_tar_reads_the_archive() {
    let dir = tempfile::tempdir().expect("image archive test fixture");
    let path = ferrolb_archive(dir.path());
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&path)
        .output()
        .expect("image archive test fixture");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = String::from_utf8(out.stdout).expect("image archive test fixture");
    for name in ["oci-layout", "index.json", "manifest.json"] {
        assert!(
            names.lines().any(|l| l == name),
            "{name} missing in {names}"
        );
    }
    let blobs = names
        .lines()
        .filter(|l| l.starts_with("blobs/sha256/") && l.len() > 20);
    assert_eq!(blobs.count(), 3, "{names}");
}
