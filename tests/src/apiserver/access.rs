//! Who talks to a [`ControlPlane`]: kubeconfigs and clients for the admin, for users with client
//! certificates, for static-token users and for service accounts, and `kubectl`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::AsyncWriteExt;

use super::pki::{CertFiles, write_file};
use super::{ControlPlane, SERVICE_ACCOUNT_ISSUER, TokenUser};

/// How a kubeconfig authenticates.
pub(crate) enum Credentials<'a> {
    /// A client certificate and key (files).
    Cert(&'a CertFiles),
    /// A bearer token.
    Token(&'a str),
}

/// A kubeconfig as JSON (a subset of YAML, so kubectl and kube-rs both read it).
pub(crate) fn kubeconfig_json(server: &str, ca: &Path, credentials: Credentials<'_>) -> String {
    let user = match credentials {
        Credentials::Cert(files) => serde_json::json!({
            "client-certificate": files.cert.to_string_lossy(),
            "client-key": files.key.to_string_lossy(),
        }),
        Credentials::Token(token) => serde_json::json!({ "token": token }),
    };
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "ferrolb-test", "cluster": {
            "server": server,
            "certificate-authority": ca.to_string_lossy(),
        }}],
        "users": [{ "name": "user", "user": user }],
        "contexts": [{ "name": "ferrolb-test", "context": {
            "cluster": "ferrolb-test",
            "user": "user",
            "namespace": "default",
        }}],
        "current-context": "ferrolb-test",
    });
    format!("{kubeconfig:#}\n")
}

/// A kube client configuration read from the kubeconfig at `path`.
pub(crate) async fn config_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Config> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", path.display()))
}

/// The static token file: the admin and `users`.
pub(crate) fn token_file(admin_token: &str, users: &[TokenUser]) -> String {
    let mut csv = format!("{admin_token},admin,uid-admin,\"system:masters\"\n");
    for (i, user) in users.iter().enumerate() {
        csv.push_str(&format!(
            "{},{},uid-token-user-{i},\"{}\"\n",
            user.token,
            user.name,
            user.groups.join(",")
        ));
    }
    csv
}

/// 128 random bits, hex.
pub(crate) fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `name` reduced to characters that are safe in a file name.
fn file_stem(name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The output of one kubectl run.
#[derive(Debug, Clone)]
pub struct KubectlOutput {
    /// The command line, for messages.
    pub command: String,
    /// kubectl's exit status.
    pub status: ExitStatus,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl KubectlOutput {
    /// Whether kubectl exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Standard output if kubectl succeeded, else an error with its stderr.
    pub fn into_stdout(self) -> anyhow::Result<String> {
        if !self.success() {
            bail!(
                "`{}` failed ({}): {}",
                self.command,
                self.status,
                self.stderr.trim()
            );
        }
        Ok(self.stdout)
    }
}

impl ControlPlane {
    fn users_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self.dir().join("users");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// Writes a kubeconfig for user `name` in `groups`, authenticated by a new client
    /// certificate from the control plane's CA. At most two groups fit in a certificate (see
    /// [`ControlPlaneBuilder::token_user`](super::ControlPlaneBuilder::token_user) for more).
    /// The user has no permissions until RBAC grants some. Useful for running a binary as a
    /// restricted user.
    pub fn kubeconfig_for_user(&self, name: &str, groups: &[&str]) -> anyhow::Result<PathBuf> {
        let dir = self.users_dir()?;
        let stem = file_stem(name);
        let files = self.ca.client_cert(name, groups)?.write(&dir, &stem)?;
        let path = dir.join(format!("{stem}.kubeconfig"));
        let json = kubeconfig_json(&self.server_url, &self.ca_path(), Credentials::Cert(&files));
        write_file(&path, &json)?;
        Ok(path)
    }

    /// A client for user `name` in `groups` (see [`Self::kubeconfig_for_user`]).
    pub async fn client_for_user(
        &self,
        name: &str,
        groups: &[&str],
    ) -> anyhow::Result<kube::Client> {
        let path = self.kubeconfig_for_user(name, groups)?;
        client_from_kubeconfig(&path).await
    }

    /// Writes a kubeconfig that authenticates with a bearer `token` (a static token user or a
    /// service-account token).
    pub fn kubeconfig_for_token(&self, token: &str) -> anyhow::Result<PathBuf> {
        let path = self
            .users_dir()?
            .join(format!("{}.kubeconfig", file_stem("token")));
        let json = kubeconfig_json(&self.server_url, &self.ca_path(), Credentials::Token(token));
        write_file(&path, &json)?;
        Ok(path)
    }

    /// A client that authenticates with a bearer `token`.
    pub async fn client_for_token(&self, token: &str) -> anyhow::Result<kube::Client> {
        let path = self.kubeconfig_for_token(token)?;
        client_from_kubeconfig(&path).await
    }

    /// A real service-account token (TokenRequest API, valid 24 h) for `namespace/name`,
    /// creating the ServiceAccount if it does not exist. The namespace must exist.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(self.client(), namespace);
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_already_exists() => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating ServiceAccount {namespace}/{name}"));
            }
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![SERVICE_ACCOUNT_ISSUER.to_owned()],
                expiration_seconds: Some(24 * 3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let response = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?;
        response
            .status
            .map(|s| s.token)
            .with_context(|| format!("the TokenRequest for {namespace}/{name} has no status"))
    }

    /// A client acting as ServiceAccount `namespace/name` (see [`Self::service_account_token`]).
    pub async fn client_for_service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<kube::Client> {
        let token = self.service_account_token(namespace, name).await?;
        self.client_for_token(&token).await
    }

    /// Runs kubectl as the admin. A non-zero exit is not an error here; see
    /// [`KubectlOutput::into_stdout`].
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<KubectlOutput> {
        self.kubectl_with(self.kubeconfig_path(), args, None).await
    }

    /// Runs kubectl with `kubeconfig`, feeding `stdin` if given (e.g. `apply -f -`).
    pub async fn kubectl_with(
        &self,
        kubeconfig: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<KubectlOutput> {
        let command = format!("kubectl {}", args.join(" "));
        let mut cmd = tokio::process::Command::new(self.binaries().kubectl());
        cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
            // A per-control-plane discovery cache: ports are reused across runs.
            .arg(format!(
                "--cache-dir={}",
                self.dir().join("kubectl-cache").display()
            ))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting `{command}`"))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .await
                .with_context(|| format!("writing the stdin of `{command}`"))?;
            // Dropping the pipe closes it: kubectl sees the end of its input.
        }
        let output = child
            .wait_with_output()
            .await
            .with_context(|| format!("waiting for `{command}`"))?;
        Ok(KubectlOutput {
            command,
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// A client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let config = config_from_kubeconfig(path).await?;
    kube::Client::try_from(config)
        .with_context(|| format!("building a client from {}", path.display()))
}
