//! Reading the legacy configuration's entries: typed fields (wrong types reported and
//! dropped, unknown keys reported) and names made Kubernetes names.

use serde_json::{Map, Value, json};

use crate::migrate::{Kind, Run};

/// The value types of legacy fields.
#[derive(Clone, Copy, Debug)]
pub(super) enum Type {
    U32,
    U16,
    Bool,
    Str,
    StrList,
}

impl Type {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Self::U32 => value.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)),
            Self::U16 => value.as_u64().is_some_and(|n| n <= u64::from(u16::MAX)),
            Self::Bool => value.is_boolean(),
            Self::Str => value.is_string(),
            Self::StrList => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::U32 => "a number 0-4294967295",
            Self::U16 => "a number 0-65535",
            Self::Bool => "true or false",
            Self::Str => "a string",
            Self::StrList => "a list of strings",
        }
    }
}

/// One mapping of the legacy configuration (a pool, a peer, …) and where it is.
pub(super) struct Entry<'a> {
    pub(super) map: &'a Map<String, Value>,
    pub(super) source: String,
}

impl Entry<'_> {
    /// Warns about keys other than `known`.
    pub(super) fn check_keys(&self, run: &mut Run<'_>, known: &[&str]) {
        for key in self.map.keys() {
            if !known.contains(&key.as_str()) {
                run.warn(
                    &self.source,
                    format!("{key} is not a field MetalLB knows here; ignored"),
                );
            }
        }
    }

    /// `from` as `to` in `spec`, if present and of type `ty`.
    pub(super) fn copy(
        &self,
        run: &mut Run<'_>,
        from: &str,
        to: &str,
        ty: Type,
        spec: &mut Map<String, Value>,
    ) {
        match self.map.get(from) {
            None | Some(Value::Null) => {}
            Some(v) if ty.accepts(v) => {
                spec.insert(to.into(), v.clone());
            }
            Some(v) => run.warn(
                &self.source,
                format!("{from}: {v} is not {}; dropped", ty.describe()),
            ),
        }
    }

    pub(super) fn str(&self, key: &str) -> Option<&str> {
        self.map.get(key).and_then(Value::as_str)
    }
}

/// The mappings of the list under `key`.
pub(super) fn entries<'a>(
    run: &mut Run<'_>,
    source: &str,
    key: &str,
    list: Option<&'a Value>,
) -> Vec<Entry<'a>> {
    let items = match list {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            run.warn(
                source,
                format!("{key}: {other} is not a list; nothing converted from it"),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let here = format!("{source}: {key}[{i}]");
        match item.as_object() {
            Some(map) => out.push(Entry { map, source: here }),
            None => run.warn(here, format!("{item} is not a mapping; skipped")),
        }
    }
    out
}

/// A MetalLB custom resource made from legacy configuration.
pub(super) fn resource(
    api_version: &str,
    kind: Kind,
    name: &str,
    spec: Map<String, Value>,
) -> Map<String, Value> {
    let doc = json!({
        "apiVersion": api_version,
        "kind": kind.as_str(),
        "metadata": { "name": name },
        "spec": spec,
    });
    match doc {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A legacy name made a Kubernetes object name, as configmaptocrs does (MetalLB names that
/// are valid stay; others are truncated to 63 characters, lower-cased, `_` becomes `-`, and
/// everything before the first letter goes), plus any other invalid character becoming `-`.
pub(super) fn object_name(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let metallb_valid = (2..=63).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if metallb_valid {
        return Some(name.to_owned());
    }
    let truncated: String = name.chars().take(63).collect();
    let cleaned: String = truncated
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let start = cleaned.find(|c: char| c.is_ascii_lowercase())?;
    let name = cleaned[start..].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    Some(name.to_owned())
}

/// A legacy name as an object name, with a warning when it had to change.
pub(super) fn rename(run: &mut Run<'_>, source: &str, what: &str, name: &str) -> Option<String> {
    match object_name(name) {
        Some(new) if new == name => Some(new),
        Some(new) => {
            run.warn(
                source,
                format!(
                    "{what} name {name:?} is not a valid Kubernetes name; renamed {new:?} (as \
                     MetalLB's configmaptocrs renames it)"
                ),
            );
            Some(new)
        }
        None => {
            run.warn(
                source,
                format!("{what} name {name:?} cannot be made a Kubernetes name; skipped"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::object_name;

    #[test]
    fn names_change_as_configmaptocrs_changes_them() {
        // From configmaptocrs/testdata/configmap-yaml/config-yaml-convert-names.{yaml,golden}.
        let cases = [
            ("my-ip-space", "my-ip-space"),
            ("01-numbered-addresspool", "numbered-addresspool"),
            ("Capitalized-AddressPool", "capitalized-addresspool"),
            ("underscored_bfd_profile", "underscored-bfd-profile"),
            (
                concat!(
                    "tooLongBFDProfileName01-tooLongBFDProfileName02-",
                    "tooLongBFDProfileName03-tooLongBFDProfileName04"
                ),
                "toolongbfdprofilename01-toolongbfdprofilename02-toolongbfdprofi",
            ),
            ("pool with spaces!", "pool-with-spaces"),
        ];
        for (legacy, want) in cases {
            assert_eq!(object_name(legacy).as_deref(), Some(want), "{legacy}");
        }
        assert_eq!(object_name("123"), None);
    }
}
