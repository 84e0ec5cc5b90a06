//! What is wrong with a configuration object, said so a user can find and fix it.

use std::fmt;

/// The kinds of objects a configuration is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// `IPAddressPool`
    IPAddressPool,
    /// `L2Advertisement`
    L2Advertisement,
    /// `BGPAdvertisement`
    BGPAdvertisement,
    /// `BGPPeer`
    BGPPeer,
    /// `BFDProfile`
    BFDProfile,
    /// `Community`
    Community,
}

impl ObjectKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IPAddressPool => "IPAddressPool",
            Self::L2Advertisement => "L2Advertisement",
            Self::BGPAdvertisement => "BGPAdvertisement",
            Self::BGPPeer => "BGPPeer",
            Self::BFDProfile => "BFDProfile",
            Self::Community => "Community",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The object is not used until it is fixed.
    Error,
    /// The object refers to something that does not exist (yet): it is not used until the
    /// reference resolves, which may happen without editing the object.
    Transient,
    /// The object is used, but probably not as the user meant (e.g. it names a pool that does
    /// not exist).
    Warning,
}

/// One problem in one object, with the field it is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigError {
    /// The object's kind.
    pub kind: ObjectKind,
    /// The object's name.
    pub name: String,
    /// Path of the offending field, as kubectl prints it (`spec.addresses[1]`).
    pub field: String,
    /// What is wrong, in words a user can act on.
    pub reason: String,
    /// Whether the object is unusable, waiting for a reference, or usable with a warning.
    pub severity: Severity,
}

impl ConfigError {
    pub(crate) fn new(
        kind: ObjectKind,
        name: &str,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            field: field.into(),
            reason: reason.into(),
            severity: Severity::Error,
        }
    }

    pub(crate) fn transient(mut self) -> Self {
        self.severity = Severity::Transient;
        self
    }

    pub(crate) fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// True unless this is only a warning.
    pub fn disables_object(&self) -> bool {
        self.severity != Severity::Warning
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Error => "",
            Severity::Transient => " (waiting for a reference)",
            Severity::Warning => " (warning)",
        };
        write!(
            f,
            "{} {:?}: {}: {}{tag}",
            self.kind, self.name, self.field, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// Collects the problems of one object.
#[derive(Debug)]
pub(crate) struct Problems<'a> {
    kind: ObjectKind,
    name: &'a str,
    pub(crate) list: Vec<ConfigError>,
}

impl<'a> Problems<'a> {
    pub(crate) fn new(kind: ObjectKind, name: &'a str) -> Self {
        Self {
            kind,
            name,
            list: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.list
            .push(ConfigError::new(self.kind, self.name, field, reason));
    }

    pub(crate) fn transient(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.list
            .push(ConfigError::new(self.kind, self.name, field, reason).transient());
    }

    pub(crate) fn warning(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.list
            .push(ConfigError::new(self.kind, self.name, field, reason).warning());
    }

    /// True when nothing found so far makes the object unusable.
    pub(crate) fn usable(&self) -> bool {
        !self.list.iter().any(ConfigError::disables_object)
    }
}
