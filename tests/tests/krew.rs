//! kubectl-ferrolb as krew users get it. `manifests/krew/release.sh` writes the release archive
//! and the plugin manifest from `manifests/krew/ferrolb.yaml`; krew's own tools (v0.4.3, built
//! from their Go module by `tests/setup/krew.sh`) then judge them: `validate-krew-manifest` (the
//! check krew's index runs on every plugin), and `krew install --manifest --archive`, which
//! verifies the archive's sha256 and unpacks it the way `kubectl krew install ferrolb` will.
//! The installed plugin is then run by the real kubectl's plugin discovery, and `kubectl ferrolb
//! version` reads the workloads `manifests/install.yaml` creates on a real apiserver.
//!
//! The archive holds the debug build here; a release publishes the static musl build
//! (release.sh's default). Only the download itself (from GitHub) is not exercised.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, ensure};
use ferrolb_tests::apiserver::{ControlPlane, binaries, run_setup_script};
use ferrolb_tests::fixtures::{repo_path, workspace_binary};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The directory holding `krew` and `validate-krew-manifest`.
fn krew_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("FERROLB_KREW_BIN") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => run_setup_script("krew")?,
    };
    for tool in ["krew", "validate-krew-manifest"] {
        ensure!(
            dir.join(tool).is_file(),
            "{} holds no {tool}",
            dir.display()
        );
    }
    Ok(dir)
}

fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {shown}"))
}

fn text(output: &Output) -> String {
    format!(
        "exit {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs release.sh with the workspace's kubectl-ferrolb into `out`: (manifest, archive).
fn release(out: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let plugin = workspace_binary("kubectl-ferrolb")?;
    let output = run(Command::new("bash")
        .arg(repo_path("manifests/krew/release.sh"))
        .arg(out)
        .arg(&plugin))?;
    ensure!(output.status.success(), "release.sh: {}", text(&output));
    let manifest = out.join("ferrolb.yaml");
    let archive = out.join(format!("kubectl-ferrolb_v{VERSION}_linux_amd64.tar.gz"));
    ensure!(
        manifest.is_file() && archive.is_file(),
        "release.sh wrote {out:?} without both"
    );
    Ok((manifest, archive))
}

/// `krew install --manifest --archive` into `root` (KREW_ROOT), as linux/amd64.
fn krew_install(
    krew: &Path,
    root: &Path,
    manifest: &Path,
    archive: &Path,
) -> anyhow::Result<Output> {
    run(Command::new(krew.join("krew"))
        .arg("install")
        .arg(format!("--manifest={}", manifest.display()))
        .arg(format!("--archive={}", archive.display()))
        .env("KREW_ROOT", root)
        .env("KREW_OS", "linux")
        .env("KREW_ARCH", "amd64"))
}

/// [`krew_install`] into `work/krew`, which must succeed: the KREW_ROOT.
fn installed(krew: &Path, work: &Path, manifest: &Path, archive: &Path) -> anyhow::Result<PathBuf> {
    let root = work.join("krew");
    let output = krew_install(krew, &root, manifest, archive)?;
    ensure!(output.status.success(), "krew install: {}", text(&output));
    Ok(root)
}

/// kubectl with `args`, finding plugins in krew's bin directory under `root` only.
fn kubectl_with_plugins(
    root: &Path,
    kubeconfig: Option<&Path>,
    args: &[&str],
) -> anyhow::Result<Output> {
    let mut cmd = Command::new(binaries().kubectl());
    cmd.args(args)
        .env("PATH", root.join("bin"))
        .env("HOME", root);
    match kubeconfig {
        Some(path) => cmd.env("KUBECONFIG", path),
        None => cmd.env_remove("KUBECONFIG"),
    };
    run(&mut cmd)
}

#[test]
fn the_release_passes_krews_validation_and_installs_a_plugin_kubectl_runs() -> anyhow::Result<()> {
    let krew = krew_dir()?;
    let work = tempfile::tempdir()?;
    let (manifest, archive) = release(&work.path().join("release"))?;

    let yaml = std::fs::read_to_string(&manifest)?;
    assert!(yaml.contains(&format!("version: \"v{VERSION}\"")), "{yaml}");
    assert!(!yaml.contains('@'), "a placeholder is left: {yaml}");

    let validated = run(Command::new(krew.join("validate-krew-manifest"))
        .arg(format!("--manifest={}", manifest.display()))
        // Its install step downloads the archive from the manifest's address (GitHub, which a
        // release serves and this machine cannot reach); krew installs it from the file below.
        .arg("--skip-install"))?;
    assert!(
        validated.status.success(),
        "validate-krew-manifest: {}",
        text(&validated)
    );

    let root = installed(&krew, work.path(), &manifest, &archive)?;
    let store = root.join(format!("store/ferrolb/v{VERSION}"));
    for file in ["kubectl-ferrolb", "LICENSE"] {
        assert!(
            store.join(file).is_file(),
            "krew did not unpack {file} into {store:?}"
        );
    }

    let version = kubectl_with_plugins(&root, None, &["ferrolb", "version", "--client"])?;
    assert!(
        version.status.success(),
        "kubectl ferrolb version: {}",
        text(&version)
    );
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("kubectl-ferrolb {VERSION}\n")
    );
    let listed = kubectl_with_plugins(&root, None, &["plugin", "list", "--name-only"])?;
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("kubectl-ferrolb"),
        "kubectl plugin list: {}",
        text(&listed)
    );
    Ok(())
}

#[test]
fn an_archive_that_is_not_the_one_the_manifest_names_is_refused() -> anyhow::Result<()> {
    let krew = krew_dir()?;
    let work = tempfile::tempdir()?;
    let (manifest, archive) = release(&work.path().join("release"))?;
    // Another build of the plugin (a byte more) under the same name.
    let mut bytes = std::fs::read(&archive)?;
    bytes.push(0);
    std::fs::write(&archive, bytes)?;

    let root = work.path().join("krew");
    let installed = krew_install(&krew, &root, &manifest, &archive)?;
    assert!(
        !installed.status.success(),
        "krew installed a changed archive: {}",
        text(&installed)
    );
    assert!(
        String::from_utf8_lossy(&installed.stderr).contains("checksum does not match"),
        "krew said: {}",
        text(&installed)
    );
    assert!(
        !root.join("bin/kubectl-ferrolb").exists(),
        "nothing is installed from a refused archive"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_names_the_images_install_yaml_runs() -> anyhow::Result<()> {
    let krew = krew_dir()?;
    let work = tempfile::tempdir()?;
    let (manifest, archive) = release(&work.path().join("release"))?;
    let root = installed(&krew, work.path(), &manifest, &archive)?;

    let cp = ControlPlane::start().await?;
    let kubeconfig = cp.kubeconfig_path().to_owned();
    // Before ferrolb is installed: the plugin says there is none, and still succeeds.
    let before = kubectl_with_plugins(&root, Some(&kubeconfig), &["ferrolb", "version"])?;
    assert!(before.status.success(), "{}", text(&before));
    assert!(
        String::from_utf8_lossy(&before.stdout).contains("no ferrolb workload"),
        "{}",
        text(&before)
    );

    let install = repo_path("manifests/install.yaml");
    cp.kubectl(&["apply", "--server-side", "-f", &install.to_string_lossy()])
        .await?
        .into_stdout()
        .context("install.yaml applies server-side")?;
    let after = kubectl_with_plugins(
        &root,
        Some(&kubeconfig),
        &["ferrolb", "version", "-o", "json"],
    )?;
    assert!(after.status.success(), "{}", text(&after));
    let shown: serde_json::Value = serde_json::from_slice(&after.stdout)?;
    let yaml = std::fs::read_to_string(&install)?;
    let image = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .context("install.yaml names an image")?;
    // No kube-controller-manager or kubelet runs here: nothing is ready, and the speaker's
    // DaemonSet wants no pod yet.
    assert_eq!(
        shown,
        serde_json::json!({
            "client": VERSION,
            "cluster": [
                {"component": "controller", "workload": "Deployment/ferrolb-controller",
                 "images": [image], "ready": 0, "desired": 2},
                {"component": "speaker", "workload": "DaemonSet/ferrolb-speaker",
                 "images": [image], "ready": 0, "desired": 0},
            ]
        })
    );
    Ok(())
}
