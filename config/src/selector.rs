//! Kubernetes label selectors, evaluated in plain Rust.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::LabelSelector;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// A validated label selector: every requirement must hold (AND). The empty selector matches
/// everything.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// A selector that matches objects carrying every one of `labels`.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let requirements = labels
            .into_iter()
            .map(|(k, v)| Requirement::In(k.to_owned(), BTreeSet::from([v.to_owned()])))
            .collect();
        Self::normalised(requirements)
    }

    /// Validates a Kubernetes `LabelSelector`. The error says what is wrong, relative to the
    /// selector (`matchExpressions[0].operator: …`).
    pub fn parse(selector: &LabelSelector) -> Result<Self, (String, String)> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            check_key(key).map_err(|e| (format!("matchLabels[{key}]"), e))?;
            check_value(value).map_err(|e| (format!("matchLabels[{key}]"), e))?;
            requirements.push(Requirement::In(
                key.clone(),
                BTreeSet::from([value.clone()]),
            ));
        }
        for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
            let at = |f: &str| format!("matchExpressions[{i}].{f}");
            check_key(&expr.key).map_err(|e| (at("key"), e))?;
            let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
            for v in &values {
                check_value(v).map_err(|e| (at("values"), e))?;
            }
            let key = expr.key.clone();
            let requirement = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err((
                        at("values"),
                        format!("operator {} needs values", expr.operator),
                    ));
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err((
                        at("values"),
                        format!("operator {} takes no values", expr.operator),
                    ));
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    return Err((
                        at("operator"),
                        format!(
                            "unknown operator {other:?}: use In, NotIn, Exists or DoesNotExist"
                        ),
                    ));
                }
            };
            requirements.push(requirement);
        }
        Ok(Self::normalised(requirements))
    }

    fn normalised(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort();
        requirements.dedup();
        Self { requirements }
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// True for the selector that matches everything.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// Any selector of `selectors` matches (OR). An empty list matches everything.
pub fn any_matches(selectors: &[Selector], labels: &Labels) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// Parses a list of selectors at `field`, reporting bad and repeated ones.
pub(crate) fn parse_list(
    selectors: &[LabelSelector],
    field: &str,
    problems: &mut crate::error::Problems<'_>,
) -> Vec<Selector> {
    let mut out: Vec<Selector> = Vec::new();
    for (i, s) in selectors.iter().enumerate() {
        match Selector::parse(s) {
            Ok(sel) if out.contains(&sel) => {
                problems.error(format!("{field}[{i}]"), "duplicate selector");
            }
            Ok(sel) => out.push(sel),
            Err((path, reason)) => problems.error(format!("{field}[{i}].{path}"), reason),
        }
    }
    out
}

/// Label keys: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if !ok {
            return Err(format!("invalid label key prefix {p:?}"));
        }
    }
    if name.is_empty() || name.len() > 63 || !is_label_name(name) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= 63 && is_label_name(value)) {
        Ok(())
    } else {
        Err(format!("invalid label value {value:?}"))
    }
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter()
            .all(|c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_api::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn selector(ml: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
        LabelSelector {
            match_labels: (!ml.is_empty()).then(|| labels(ml)),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        }
    }

    #[test]
    fn operators_match_as_kubernetes_defines_them() {
        let node = labels(&[("zone", "a"), ("edge", "true")]);
        let cases = [
            (selector(&[("zone", "a")], vec![]), true),
            (selector(&[("zone", "b")], vec![]), false),
            (selector(&[], vec![expr("zone", "In", &["a", "b"])]), true),
            (selector(&[], vec![expr("zone", "NotIn", &["a"])]), false),
            (selector(&[], vec![expr("rack", "NotIn", &["a"])]), true),
            (selector(&[], vec![expr("edge", "Exists", &[])]), true),
            (
                selector(&[], vec![expr("edge", "DoesNotExist", &[])]),
                false,
            ),
            (
                selector(&[("zone", "a")], vec![expr("edge", "In", &["false"])]),
                false,
            ),
            (selector(&[], vec![]), true),
        ];
        for (sel, want) in cases {
            let parsed = Selector::parse(&sel).expect("valid");
            assert_eq!(parsed.matches(&node), want, "{sel:?}");
        }
    }

    #[test]
    fn bad_selectors_name_the_offending_part() {
        let cases = [
            (
                selector(&[], vec![expr("zone", "Equals", &["a"])]),
                "matchExpressions[0].operator",
            ),
            (
                selector(&[], vec![expr("zone", "In", &[])]),
                "matchExpressions[0].values",
            ),
            (
                selector(&[], vec![expr("zone", "Exists", &["a"])]),
                "matchExpressions[0].values",
            ),
            (
                selector(&[("bad key", "a")], vec![]),
                "matchLabels[bad key]",
            ),
            (selector(&[("zone", "-a")], vec![]), "matchLabels[zone]"),
        ];
        for (sel, field) in cases {
            let (path, _) = Selector::parse(&sel).expect_err("invalid");
            assert_eq!(path, field);
        }
    }

    #[test]
    fn an_empty_list_of_selectors_matches_everything_and_lists_are_ored() {
        let l = labels(&[("app", "web")]);
        assert!(any_matches(&[], &l));
        let web = Selector::from_labels([("app", "web")]);
        let db = Selector::from_labels([("app", "db")]);
        assert!(any_matches(&[db.clone(), web], &l));
        assert!(!any_matches(&[db], &l));
    }
}
