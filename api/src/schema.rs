//! String types whose syntax the apiserver checks with CEL, and small schema helpers.
//!
//! Each newtype carries its own `x-kubernetes-validations`, so a bad entry in a list is reported
//! with its index (`spec.addresses[2]: Invalid value: …`) and the message a user can act on.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// One `spec.addresses` entry of an IPAddressPool: a CIDR (`192.0.2.0/24`, `2001:db8::/64`) or
/// an inclusive range (`192.0.2.10-192.0.2.20`, spaces around `-` allowed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct AddressEntry(pub String);

/// A BGP community value: legacy `AS:VALUE` (two 16-bit numbers) or large `large:A:B:C` (three
/// 32-bit numbers).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct CommunityValue(pub String);

/// A BGP community value as in [`CommunityValue`], or the name of an alias defined in a
/// `Community` object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(transparent)]
pub struct CommunityOrAlias(pub String);

impl fmt::Display for AddressEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AddressEntry {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<&str> for CommunityOrAlias {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<&str> for CommunityValue {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// CEL: one side of a range, trimmed. `part` is 0 or 1.
fn range_side(part: usize) -> String {
    format!("self.split('-')[{part}].trim()")
}

fn address_entry_rule() -> String {
    let (a, b) = (range_side(0), range_side(1));
    format!(
        "self.contains('-') ? (self.split('-').size() == 2 && isIP({a}) && isIP({b}) && \
         ip({a}).family() == ip({b}).family() && ip({a}).isGlobalUnicast() && \
         ip({b}).isGlobalUnicast()) : (isCIDR(self) && cidr(self).ip().isGlobalUnicast())"
    )
}

const LEGACY: &str = "self.matches('^[0-9]{1,5}:[0-9]{1,5}$')";
const LEGACY_RANGE: &str = "int(self.split(':')[0]) <= 65535 && int(self.split(':')[1]) <= 65535";
const LARGE: &str = "self.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$')";
const LARGE_RANGE: &str = "int(self.split(':')[1]) <= 4294967295 && \
     int(self.split(':')[2]) <= 4294967295 && int(self.split(':')[3]) <= 4294967295";
/// An alias name: what is not community syntax (no `:`), DNS-label-like.
const ALIAS: &str = "self.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')";

impl JsonSchema for AddressEntry {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "AddressEntry".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "description": "A CIDR (192.0.2.0/24, 2001:db8::/64) or an inclusive range of one family \
                (192.0.2.10-192.0.2.20). Addresses must be global unicast.",
            "x-kubernetes-validations": [{
                "rule": address_entry_rule(),
                "message": "must be a CIDR (192.0.2.0/24) or a range of one address family \
                    (192.0.2.10-192.0.2.20) of unicast addresses",
            }],
        })
    }
}

impl JsonSchema for CommunityValue {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "CommunityValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 64,
            "description": "A BGP community: legacy AS:VALUE (two numbers 0-65535) or large \
                large:A:B:C (three numbers 0-4294967295).",
            "x-kubernetes-validations": [{
                "rule": format!("({LEGACY} && {LEGACY_RANGE}) || ({LARGE} && {LARGE_RANGE})"),
                "message": "must be a legacy community AS:VALUE (two numbers 0-65535) or a large \
                    community large:A:B:C (three numbers 0-4294967295)",
            }],
        })
    }
}

impl JsonSchema for CommunityOrAlias {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "CommunityOrAlias".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "maxLength": 64,
            "description": "A BGP community (AS:VALUE, or large:A:B:C) or the name of an alias \
                defined in a Community object.",
            "x-kubernetes-validations": [{
                "rule": format!(
                    "{LEGACY} ? ({LEGACY_RANGE}) : ({LARGE} ? ({LARGE_RANGE}) : {ALIAS})"
                ),
                "message": "must be a legacy community AS:VALUE (two numbers 0-65535), a large \
                    community large:A:B:C (three numbers 0-4294967295) or a Community alias name",
            }],
        })
    }
}
