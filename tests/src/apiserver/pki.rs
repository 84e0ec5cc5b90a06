//! Certificates and keys for a test control plane, generated with rcgen (ECDSA P-256).
//!
//! * a CA that signs everything and that the apiserver trusts for client certificates
//!   (`--client-ca-file`);
//! * the apiserver's serving certificate;
//! * client certificates: the username is the CN, each group an O (Kubernetes' x509
//!   authenticator);
//! * the service-account signing key pair (kube-apiserver accepts ECDSA PKCS#8 keys).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// X.509 attribute type `organizationName` (2.5.4.10).
const ORGANIZATION_NAME_OID: [u64; 4] = [2, 5, 4, 10];

/// The certificate authority of one control plane.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub(crate) struct CertAndKey {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// Where a certificate and key were written.
#[derive(Debug, Clone)]
pub(crate) struct CertFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl CertAndKey {
    /// Writes `<dir>/<stem>.crt` and `<dir>/<stem>.key`.
    pub(crate) fn write(&self, dir: &Path, stem: &str) -> anyhow::Result<CertFiles> {
        let files = CertFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        write_file(&files.cert, &self.cert_pem)?;
        write_file(&files.key, &self.key_pem)?;
        Ok(files)
    }
}

impl Ca {
    /// A fresh self-signed CA.
    pub(crate) fn new() -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "ferrolb-test-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .context("self-signing the CA certificate")?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM.
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A serving certificate for the apiserver, valid for `ips` and `dns_names`.
    pub(crate) fn serving_cert(
        &self,
        ips: &[IpAddr],
        dns_names: &[&str],
    ) -> anyhow::Result<CertAndKey> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for name in dns_names {
            let name = (*name)
                .try_into()
                .with_context(|| format!("{name:?} is not a valid DNS SAN"))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, "the apiserver serving certificate")
    }

    /// A client certificate for user `name` in `groups`.
    ///
    /// rcgen keeps one value per attribute type, but the organizationName OID can be spelled
    /// two ways (the named and the custom type), so at most two groups fit in a certificate;
    /// `system:authenticated` is added by the apiserver and needs no entry.
    pub(crate) fn client_cert(&self, name: &str, groups: &[&str]) -> anyhow::Result<CertAndKey> {
        if groups.len() > 2 {
            bail!(
                "a client certificate carries at most two groups; {name:?} asks for {groups:?} \
                 (use a static token user, ControlPlaneBuilder::token_user, for more)"
            );
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        if let Some(first) = groups.first() {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *first);
        }
        if let Some(second) = groups.get(1) {
            params.distinguished_name.push(
                DnType::CustomDnType(ORGANIZATION_NAME_OID.to_vec()),
                *second,
            );
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, &format!("the client certificate of {name:?}"))
    }

    fn sign(&self, params: CertificateParams, what: &str) -> anyhow::Result<CertAndKey> {
        let key = KeyPair::generate().with_context(|| format!("generating the key of {what}"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("signing {what}"))?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A service-account signing key pair: (private key PEM, public key PEM).
pub(crate) fn service_account_key() -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate().context("generating the service-account key")?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// Writes `contents` to `path` with an error that names the file.
pub(crate) fn write_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
