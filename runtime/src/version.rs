//! The oldest Kubernetes ferrolb runs on, checked when a binary starts: on an older apiserver
//! ferrolb's CRDs do not install, and what would follow (watches of kinds that do not exist)
//! names no cause. The binaries stop at once instead, saying which version they found.

use anyhow::bail;

/// The oldest supported Kubernetes, as (major, minor). ferrolb's CRDs validate addresses with
/// CEL's IP and CIDR library (`isIP`, `ip()`, `cidr()`): kube-apiserver 1.30 has it only for
/// rules it already stores, and accepts it in a new CRD from 1.31 (both checked on real
/// apiservers). Service status has `ipMode` there too (a cluster that turns its gate off, as
/// 1.31 still allows, drops the field and keeps the IPs).
pub const MINIMUM: (u32, u32) = (1, 31);

/// Reads the version as the apiserver reports it: `major` "1", `minor` "34" — or "28+" and the
/// like on some distributions. `None` if there are no digits to read.
pub fn parse(major: &str, minor: &str) -> Option<(u32, u32)> {
    let number = |s: &str| -> Option<u32> {
        let digits: String = s.trim().chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    Some((number(major)?, number(minor)?))
}

/// Whether `found` is too old, as the error to stop with.
pub fn check(found: (u32, u32)) -> anyhow::Result<()> {
    if found < MINIMUM {
        bail!(
            "Kubernetes {}.{} is too old: ferrolb needs {}.{} or newer (its CRDs validate \
             addresses with CEL's IP library, which CRDs may use from 1.31)",
            found.0,
            found.1,
            MINIMUM.0,
            MINIMUM.1
        );
    }
    Ok(())
}

/// How long the start waits for the apiserver's answer.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Asks the apiserver its version and fails if it is older than [`MINIMUM`]. A version that
/// cannot be read (an unreachable or slow apiserver, an unusual version string) is logged and
/// let through: the watches retry and report what is wrong.
pub async fn require_supported(client: &kube::Client) -> anyhow::Result<()> {
    match tokio::time::timeout(ASK_TIMEOUT, client.apiserver_version()).await {
        Err(_) => tracing::warn!("the apiserver did not say its version in time; going on"),
        Ok(Ok(info)) => match parse(&info.major, &info.minor) {
            Some(found) => {
                check(found)?;
                tracing::info!(version = %info.git_version, "Kubernetes version supported");
            }
            None => tracing::warn!(
                major = %info.major, minor = %info.minor,
                "cannot read the apiserver's version; going on"
            ),
        },
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot ask the apiserver its version; going on"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_as_distributions_report_them() {
        assert_eq!(parse("1", "34"), Some((1, 34)));
        assert_eq!(parse("1", "28+"), Some((1, 28)));
        assert_eq!(parse(" 1 ", "30"), Some((1, 30)));
        assert_eq!(parse("1", ""), None);
        assert_eq!(parse("", "30"), None);
    }

    #[test]
    fn releases_before_1_31_are_refused_naming_the_version() {
        let e = check((1, 30)).expect_err("1.30 is too old");
        assert!(e.to_string().contains("Kubernetes 1.30 is too old"), "{e}");
        assert!(check((1, 31)).is_ok());
        assert!(check((1, 37)).is_ok());
        assert!(check((2, 0)).is_ok());
    }
}
