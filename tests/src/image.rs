//! Container images without a registry or a Docker daemon: one-layer OCI image archives written
//! by our own code (a ustar writer and SHA-256), which `ctr images import`, `docker load` and
//! `kind load image-archive` all read.
//!
//! An archive is an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) whose index
//! names the image with the annotation `io.containerd.image.name` (what containerd's importer
//! uses), plus a `manifest.json` in Docker's `docker save` format pointing at the same blobs (what
//! Docker's classic loader uses) — the shape `docker save` itself writes since Docker 25. The
//! layer is an uncompressed tar; timestamps are zero, so the same inputs give the same digests.
//!
//! [`ferrolb`] is the Dockerfile's result (`/ferrolb-controller`, `/ferrolb-speaker`, the CA bundle
//! at `/etc/ssl/certs/ca-certificates.crt`, `USER 65532:65532`, entrypoint the controller);
//! [`pause`] and [`echo`] are the test cluster's sandbox and workload images.

mod tar;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::json;
use sha2::{Digest, Sha256};

pub use tar::{Entry, read_tar, write_tar};

/// The ferrolb image's reference, as the manifests name it.
pub const FERROLB_IMAGE: &str = "ghcr.io/ferrolb/ferrolb:0.1.0";
/// The pod sandbox image of the test cluster (containerd's `sandbox_image`).
pub const PAUSE_IMAGE: &str = "localhost/ferrolb/pause:0.1.0";
/// The HTTP workload image of the test cluster.
pub const ECHO_IMAGE: &str = "localhost/ferrolb/echo:0.1.0";
/// Docker's default `PATH`, which BuildKit also sets on images built `FROM scratch`.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// A file of the image's single layer.
#[derive(Clone, Debug)]
pub struct LayerFile {
    /// Absolute path in the image (`/ferrolb-controller`).
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Where its contents come from on this machine.
    pub source: PathBuf,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The reference it is imported under (`ghcr.io/ferrolb/ferrolb:0.1.0`).
    pub reference: String,
    /// The layer's files (parent directories are added, mode 0755, owned by root).
    pub files: Vec<LayerFile>,
    /// `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// `USER`, if any.
    pub user: Option<String>,
}

/// What [`write_archive`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The archive.
    pub path: PathBuf,
    /// The manifest's digest (`sha256:…`), as containerd reports it after the import.
    pub manifest_digest: String,
}

/// The ferrolb image, as the Dockerfile builds it.
pub fn ferrolb(controller: &Path, speaker: &Path, ca_bundle: &Path) -> ImageSpec {
    ImageSpec {
        reference: FERROLB_IMAGE.to_owned(),
        files: vec![
            file("/etc/ssl/certs/ca-certificates.crt", 0o644, ca_bundle),
            file("/ferrolb-controller", 0o755, controller),
            file("/ferrolb-speaker", 0o755, speaker),
        ],
        entrypoint: vec!["/ferrolb-controller".to_owned()],
        user: Some("65532:65532".to_owned()),
    }
}

/// The sandbox image: a static `pause()` loop at `/pause`.
pub fn pause(binary: &Path) -> ImageSpec {
    ImageSpec {
        reference: PAUSE_IMAGE.to_owned(),
        files: vec![file("/pause", 0o755, binary)],
        entrypoint: vec!["/pause".to_owned()],
        user: Some("65535:65535".to_owned()),
    }
}

/// The workload image: a static HTTP server at `/echo`.
pub fn echo(binary: &Path) -> ImageSpec {
    ImageSpec {
        reference: ECHO_IMAGE.to_owned(),
        files: vec![file("/echo", 0o755, binary)],
        entrypoint: vec!["/echo".to_owned()],
        user: Some("65532:65532".to_owned()),
    }
}

/// One of MetalLB's images (`component`: `speaker` or `controller`) under the reference its own
/// manifests use (`quay.io/metallb/<component>:v<version>`), holding the binary built from its
/// Go module as `/<component>`, its entrypoint. No `USER`: MetalLB's manifests set the
/// controller's, and its speaker runs as root with `NET_RAW`.
pub fn metallb(component: &str, version: &str, binary: &Path) -> ImageSpec {
    let path = format!("/{component}");
    ImageSpec {
        reference: format!("quay.io/metallb/{component}:v{version}"),
        files: vec![file(&path, 0o755, binary)],
        entrypoint: vec![path],
        user: None,
    }
}

fn file(path: &str, mode: u32, source: &Path) -> LayerFile {
    LayerFile {
        path: path.to_owned(),
        mode,
        source: source.to_path_buf(),
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// The layer tar of `spec`: parent directories first, then the files, in path order.
fn layer(spec: &ImageSpec) -> anyhow::Result<Vec<u8>> {
    let mut dirs = std::collections::BTreeSet::new();
    let mut files = BTreeMap::new();
    for f in &spec.files {
        let rel = f.path.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c.is_empty() || c == "..") {
            bail!("{}: not a plain absolute file path", f.path);
        }
        let mut parent = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            parent.push_str(part);
            parent.push('/');
            dirs.insert(parent.clone());
        }
        let contents = std::fs::read(&f.source)
            .with_context(|| format!("reading {} for {}", f.source.display(), f.path))?;
        files.insert(rel.to_owned(), (f.mode, contents));
    }
    let mut entries: Vec<Entry> = dirs.into_iter().map(Entry::dir).collect();
    entries.extend(
        files
            .into_iter()
            .map(|(path, (mode, contents))| Entry::file(path, mode, contents)),
    );
    write_tar(&entries)
}

/// Writes `spec` as an image archive `out`.
pub fn write_archive(spec: &ImageSpec, out: &Path) -> anyhow::Result<Written> {
    let layer = layer(spec)?;
    let layer_digest = digest(&layer);
    let mut config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": [DEFAULT_PATH],
            "Entrypoint": spec.entrypoint,
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "ferrolb-tests image writer (tests/src/image.rs)"}],
    });
    if let Some(user) = &spec.user {
        config["config"]["User"] = json!(user);
    }
    let config = serde_json::to_vec(&config)?;
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer.len()}],
    }))?;
    let manifest_digest = digest(&manifest);
    let tag = spec
        .reference
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or("latest", |(_, tag)| tag);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": spec.reference,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))?;
    let docker_manifest = serde_json::to_vec(&json!([{
        "Config": blob_path(&config_digest),
        "RepoTags": [spec.reference],
        "Layers": [blob_path(&layer_digest)],
    }]))?;
    let entries = vec![
        Entry::dir("blobs/".to_owned()),
        Entry::dir("blobs/sha256/".to_owned()),
        Entry::file(blob_path(&config_digest), 0o644, config),
        Entry::file(blob_path(&layer_digest), 0o644, layer),
        Entry::file(blob_path(&manifest_digest), 0o644, manifest),
        Entry::file("index.json".to_owned(), 0o644, index),
        Entry::file("manifest.json".to_owned(), 0o644, docker_manifest),
        Entry::file(
            "oci-layout".to_owned(),
            0o644,
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
    ];
    let archive = write_tar(&entries)?;
    let tmp = out.with_extension("tar.tmp");
    std::fs::write(&tmp, archive).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("renaming to {}", out.display()))?;
    Ok(Written {
        path: out.to_path_buf(),
        manifest_digest,
    })
}

/// What an archive holds, as [`inspect_archive`] found it after checking every digest.
#[derive(Clone, Debug)]
pub struct Inspected {
    /// The `io.containerd.image.name` of the index's manifest.
    pub reference: String,
    /// Docker's `RepoTags` of `manifest.json`.
    pub repo_tags: Vec<String>,
    /// The image configuration (`config` of the config blob).
    pub config: serde_json::Value,
    /// The layer's entries (path, mode, contents; directories end with `/`).
    pub layer: Vec<Entry>,
}

/// Reads an archive and checks it the way an importer would: every blob's name is the SHA-256
/// of its contents, the index, manifest and `manifest.json` point at blobs that exist with the
/// sizes they claim, and the layer's digest is the config's `diff_id`.
pub fn inspect_archive(path: &Path) -> anyhow::Result<Inspected> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let files: BTreeMap<String, Vec<u8>> = read_tar(&bytes)?
        .into_iter()
        .filter(|e| !e.is_dir())
        .map(|e| (e.path, e.contents))
        .collect();
    for (name, contents) in &files {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            let actual = digest(contents);
            if actual != format!("sha256:{hex}") {
                bail!("{name} holds contents whose digest is {actual}");
            }
        }
    }
    let json = |name: &str| -> anyhow::Result<serde_json::Value> {
        let bytes = files
            .get(name)
            .with_context(|| format!("the archive has no {name}"))?;
        serde_json::from_slice(bytes).with_context(|| format!("{name} is not JSON"))
    };
    let blob = |descriptor: &serde_json::Value| -> anyhow::Result<&Vec<u8>> {
        let digest = descriptor["digest"]
            .as_str()
            .context("a descriptor without a digest")?;
        let contents = files
            .get(&blob_path(digest))
            .with_context(|| format!("no blob {digest}"))?;
        if descriptor["size"].as_u64() != Some(contents.len() as u64) {
            bail!(
                "blob {digest} is {} bytes, not {}",
                contents.len(),
                descriptor["size"]
            );
        }
        Ok(contents)
    };
    if json("oci-layout")?["imageLayoutVersion"] != "1.0.0" {
        bail!("oci-layout is not version 1.0.0");
    }
    let index = json("index.json")?;
    let [entry] = index["manifests"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    else {
        bail!("index.json must list exactly one manifest");
    };
    let reference = entry["annotations"]["io.containerd.image.name"]
        .as_str()
        .context("the index's manifest has no io.containerd.image.name")?
        .to_owned();
    let manifest: serde_json::Value = serde_json::from_slice(blob(entry)?)?;
    let config: serde_json::Value = serde_json::from_slice(blob(&manifest["config"])?)?;
    let [layer_desc] = manifest["layers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    else {
        bail!("the manifest must list exactly one layer");
    };
    let layer = blob(layer_desc)?;
    if config["rootfs"]["diff_ids"] != json!([digest(layer)]) {
        bail!("the config's diff_ids are not the layer's digest");
    }
    let docker = json("manifest.json")?;
    let docker = &docker[0];
    let config_path = docker["Config"].as_str().unwrap_or_default();
    if files.get(config_path).map(|c| digest(c))
        != manifest["config"]["digest"].as_str().map(str::to_owned)
    {
        bail!("manifest.json's Config is not the manifest's config blob");
    }
    if docker["Layers"] != json!([blob_path(&digest(layer))]) {
        bail!("manifest.json's Layers are not the manifest's layer");
    }
    let repo_tags = docker["RepoTags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Inspected {
        reference,
        repo_tags,
        config: config["config"].clone(),
        layer: read_tar(layer)?,
    })
}
