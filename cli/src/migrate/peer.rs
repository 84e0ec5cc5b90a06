//! A BGPPeer's spec made ferrolb's: the v1beta1 shape, Go's zero values, passwords into
//! Secrets, timers in the syntax ferrolb's CRD accepts, and what the CRD's rules would refuse.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ferrolb_config::parse_go_duration;
use serde_json::{Map, Value, json};

use super::resources::{BASIC_AUTH, is_zero};
use super::{Kind, Object, Run, SecretRef};

/// The fields of a `metallb.io/v1beta1` BGPPeer; anything else is not part of that version.
const V1BETA1_PEER_FIELDS: [&str; 12] = [
    "myASN",
    "peerASN",
    "peerAddress",
    "sourceAddress",
    "peerPort",
    "holdTime",
    "keepaliveTime",
    "routerID",
    "nodeSelectors",
    "password",
    "bfdProfile",
    "ebgpMultiHop",
];

fn is_zero_duration(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => parse_go_duration(s).is_ok_and(|d| d.is_zero()),
        Some(_) => false,
    }
}

pub(super) fn convert(
    run: &mut Run<'_>,
    source: &str,
    name: &str,
    v1beta1: bool,
    spec: &mut Map<String, Value>,
) -> Result<(), String> {
    if v1beta1 {
        let extra: Vec<String> = spec
            .keys()
            .filter(|k| !V1BETA1_PEER_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in extra {
            spec.remove(&key);
            run.warn(
                source,
                format!(
                    "spec.{key} is not a field of metallb.io/v1beta1 BGPPeer, so MetalLB ignored \
                     it; dropped (write the peer as metallb.io/v1beta2 to keep it)"
                ),
            );
        }
        // v1beta1 cannot leave the timers unset: MetalLB's conversion turned "unset" into 0s.
        if is_zero_duration(spec.get("holdTime")) {
            let keepalive_zero = is_zero_duration(spec.get("keepaliveTime"));
            spec.remove("holdTime");
            if keepalive_zero {
                spec.remove("keepaliveTime");
            }
            run.warn(
                source,
                "metallb.io/v1beta1 cannot leave holdTime unset: MetalLB stored it as 0s, which \
                 turns keepalives off; ferrolb leaves it unset (hold time 90s, keepalive 30s). \
                 Set holdTime: 0s if you meant no keepalives",
            );
        }
    }
    // Go's zero values, which MetalLB treats as "not set".
    if is_zero(spec.get("peerPort")) {
        spec.remove("peerPort");
    }
    if is_zero(spec.get("localASN")) {
        spec.remove("localASN");
    }
    if is_zero(spec.get("peerASN")) && spec.contains_key("dynamicASN") {
        spec.remove("peerASN");
    }
    if spec.get("password").and_then(Value::as_str) == Some("") {
        spec.remove("password");
    }
    if spec.get("dynamicASN").and_then(Value::as_str) == Some("") {
        spec.remove("dynamicASN");
    }
    password_secret(run, source, spec);
    password(run, source, name, spec);
    timers(run, source, spec);
    if let Some(id) = spec.get("routerID") {
        let ok = id.as_str().is_some_and(|s| s.parse::<Ipv4Addr>().is_ok());
        if !ok {
            run.warn(
                source,
                format!(
                    "spec.routerID {id} is not an IPv4 address, which ferrolb's router ID must \
                     be; dropped, so it is derived from the node's IPv4 address"
                ),
            );
            spec.remove("routerID");
        }
    }
    if let Some(why) = peer_refusal(spec) {
        return Err(why);
    }
    match spec.get("disableMP") {
        Some(Value::Bool(true)) => {
            spec.remove("disableMP");
            run.warn(
                source,
                "spec.disableMP is deprecated and without effect in MetalLB; ferrolb always \
                 negotiates IPv4 and IPv6 with multiprotocol BGP; dropped",
            );
        }
        Some(Value::Bool(false)) => {
            spec.remove("disableMP");
        }
        _ => {}
    }
    Ok(())
}

/// What ferrolb's CRD rules (most of them MetalLB's rules too) refuse in a peer, so that the
/// apiserver would refuse the whole object.
fn peer_refusal(spec: &Map<String, Value>) -> Option<String> {
    let has = |k: &str| spec.get(k).is_some_and(|v| !v.is_null());
    if has("peerASN") == has("dynamicASN") {
        return Some(
            "it needs exactly one of peerASN and dynamicASN (MetalLB required one too)".into(),
        );
    }
    if has("peerAddress") == has("interface") {
        return Some(
            "it needs exactly one of peerAddress and interface (MetalLB required one too)".into(),
        );
    }
    let mut family = None;
    for key in ["peerAddress", "sourceAddress"] {
        let Some(value) = spec.get(key) else {
            continue;
        };
        match value.as_str().map(str::parse::<IpAddr>) {
            Some(Ok(ip)) => {
                if family.is_some_and(|f| f != ip.is_ipv4()) {
                    return Some(
                        "sourceAddress and peerAddress are of different address families".into(),
                    );
                }
                family = Some(ip.is_ipv4());
            }
            _ => return Some(format!("spec.{key} {value} is not an IP address")),
        }
    }
    let ibgp = match (
        spec.get("peerASN"),
        spec.get("dynamicASN").and_then(Value::as_str),
    ) {
        (Some(peer), _) => Some(peer) == spec.get("myASN"),
        (None, mode) => mode == Some("internal"),
    };
    if ibgp && spec.get("ebgpMultiHop") == Some(&Value::Bool(true)) {
        return Some("ebgpMultiHop is set on an iBGP peer (MetalLB refused that too)".into());
    }
    let duration = |k: &str| {
        spec.get(k)
            .and_then(Value::as_str)
            .and_then(|t| parse_go_duration(t).ok())
    };
    let three = Duration::from_secs(3);
    match (duration("holdTime"), duration("keepaliveTime")) {
        (Some(hold), _) if !hold.is_zero() && hold < three => {
            Some("holdTime is below 3s but not 0 (MetalLB refused that too)".into())
        }
        (Some(hold), Some(keepalive)) if keepalive > hold => {
            Some("keepaliveTime exceeds holdTime (MetalLB refused that too)".into())
        }
        (None, Some(keepalive)) if !keepalive.is_zero() && keepalive * 3 < three => {
            Some("keepaliveTime without holdTime makes holdTime 3 x keepaliveTime, below 3s".into())
        }
        _ => None,
    }
}

/// `passwordSecret`: the Secret moves to the target namespace with the peer.
fn password_secret(run: &mut Run<'_>, source: &str, spec: &mut Map<String, Value>) {
    let Some(secret) = spec.get_mut("passwordSecret") else {
        return;
    };
    let name = secret
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        // `passwordSecret: {}`, Go's zero value (configmaptocrs writes it on every peer).
        spec.remove("passwordSecret");
        return;
    }
    let name = name.to_owned();
    let namespace = secret
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(obj) = secret.as_object_mut() {
        obj.remove("namespace");
    }
    run.secret_refs.push(SecretRef {
        source: source.to_owned(),
        name,
        namespace,
    });
}

/// A plaintext `password` moves into a Secret the peer refers to.
fn password(run: &mut Run<'_>, source: &str, peer: &str, spec: &mut Map<String, Value>) {
    let Some(password) = spec.get("password").cloned() else {
        return;
    };
    spec.remove("password");
    if spec.contains_key("passwordSecret") {
        run.warn(
            source,
            "both password and passwordSecret are set, which MetalLB refuses; kept \
             passwordSecret, dropped password",
        );
        return;
    }
    let Some(password) = password.as_str() else {
        run.warn(
            source,
            format!("spec.password {password} is not a string; dropped"),
        );
        return;
    };
    let mut secret_name = format!("{peer}-password");
    if secret_name.len() > 253 {
        let keep: String = peer.chars().take(253 - "-password".len()).collect();
        secret_name = format!("{}-password", keep.trim_end_matches(['-', '.']));
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": secret_name, "namespace": run.namespace },
        "type": BASIC_AUTH,
        "stringData": { "password": password },
    });
    spec.insert("passwordSecret".into(), json!({ "name": secret_name }));
    run.warn(
        source,
        format!(
            "the plaintext password moved into Secret {}/{secret_name} (type {BASIC_AUTH}), \
             which spec.passwordSecret names; the output holds the password in that Secret, so \
             keep it private",
            run.namespace
        ),
    );
    run.objects.push(Object {
        kind: Kind::Secret,
        name: secret_name,
        source: source.to_owned(),
        origin: run.document.clone(),
        doc,
    });
}

/// holdTime, keepaliveTime and connectTime, in a syntax ferrolb's CRD accepts.
fn timers(run: &mut Run<'_>, source: &str, spec: &mut Map<String, Value>) {
    for key in ["holdTime", "keepaliveTime", "connectTime"] {
        let Some(value) = spec.get(key) else {
            continue;
        };
        let parsed = value
            .as_str()
            .ok_or_else(|| format!("{value} is not a duration"))
            .and_then(|text| {
                let d = parse_go_duration(text)?;
                Ok((text.to_owned(), d))
            });
        let (text, duration) = match parsed {
            Ok(p) => p,
            Err(e) => {
                spec.remove(key);
                run.warn(source, format!("spec.{key}: {e}; dropped"));
                continue;
            }
        };
        let normalized = if key == "connectTime" {
            let secs = duration.as_secs();
            if duration.subsec_nanos() != 0 || !(1..=65535).contains(&secs) {
                spec.remove(key);
                run.warn(
                    source,
                    format!(
                        "spec.connectTime {text:?} is not a whole number of seconds between 1s \
                         and 65535s (MetalLB's rule too); dropped"
                    ),
                );
                continue;
            }
            if is_connect_time_syntax(&text) {
                text
            } else {
                format!("{secs}s")
            }
        } else if is_duration_syntax(&text) {
            text
        } else {
            format_duration(duration)
        };
        spec.insert(key.into(), json!(normalized));
    }
    let hold_nonzero = spec
        .get("holdTime")
        .and_then(Value::as_str)
        .and_then(|t| parse_go_duration(t).ok())
        .is_some_and(|d| !d.is_zero());
    let keepalive_zero = spec
        .get("keepaliveTime")
        .and_then(Value::as_str)
        .and_then(|t| parse_go_duration(t).ok())
        .is_some_and(|d| d.is_zero());
    if hold_nonzero && keepalive_zero {
        spec.remove("keepaliveTime");
        run.warn(
            source,
            "spec.keepaliveTime 0s with a non-zero holdTime would send no keepalives, so the \
             router would drop the session when the hold time runs out; dropped, so keepalives \
             go every holdTime/3",
        );
    }
}

/// What ferrolb's CRD accepts for a duration: `([0-9]{1,6}(\.[0-9]{1,9})?(ns|us|ms|s|m|h))+`.
fn is_duration_syntax(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let int = rest.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=6).contains(&int) {
            return false;
        }
        rest = &rest[int..];
        if let Some(after) = rest.strip_prefix('.') {
            let frac = after.bytes().take_while(u8::is_ascii_digit).count();
            if !(1..=9).contains(&frac) {
                return false;
            }
            rest = &after[frac..];
        }
        let Some(unit) = ["ns", "us", "ms", "s", "m", "h"]
            .into_iter()
            .find(|u| rest.starts_with(u))
        else {
            return false;
        };
        rest = &rest[unit.len()..];
    }
    true
}

/// What ferrolb's CRD accepts for connectTime: `([0-9]+h)?([0-9]+m)?([0-9]+s)?` or `[0-9]*000ms`.
fn is_connect_time_syntax(text: &str) -> bool {
    if let Some(ms) = text.strip_suffix("000ms") {
        return ms.bytes().all(|b| b.is_ascii_digit());
    }
    let mut rest = text;
    for unit in ['h', 'm', 's'] {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(unit) {
            rest = &rest[digits + 1..];
        }
    }
    rest.is_empty()
}

/// A duration as Go prints it (`1h2m3.5s`, `500ms`), which ferrolb's CRD accepts.
fn format_duration(d: Duration) -> String {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    let fraction = || {
        let digits = format!("{nanos:09}");
        digits.trim_end_matches('0').to_owned()
    };
    if secs == 0 {
        return match nanos {
            0 => "0s".to_owned(),
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            _ => format!("0.{}s", fraction()),
        };
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if nanos == 0 {
        out.push_str(&format!("{s}s"));
    } else {
        out.push_str(&format!("{s}.{}s", fraction()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_ferrolb_accepts_are_kept_and_others_rewritten_the_go_way() {
        for ok in ["90s", "1m30s", "9m0s", "0s", "1.5s", "500ms", "2h"] {
            assert!(is_duration_syntax(ok), "{ok}");
        }
        for bad in ["0", "1µs", "", "s", "1.s", "1234567s", "-1s"] {
            assert!(!is_duration_syntax(bad), "{bad}");
        }
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1), "0.000001s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600 + 1), "1h0m1s"),
            (Duration::from_millis(1500), "1.5s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want);
            assert!(is_duration_syntax(want), "{want}");
        }
    }

    #[test]
    fn connect_times_follow_ferrolbs_whole_second_syntax() {
        for ok in ["10s", "2m", "1h2m3s", "5000ms", "120s"] {
            assert!(is_connect_time_syntax(ok), "{ok}");
        }
        for bad in ["1.5s", "1500ms", "2m0.5s", "s"] {
            assert!(!is_connect_time_syntax(bad), "{bad}");
        }
    }
}
