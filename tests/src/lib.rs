//! Test support for ferrolb and its integration suites.
//!
//! This crate owns everything tests need to run ferrolb against *real* Kubernetes components
//! instead of mocks: [`apiserver`] starts a throw-away etcd and kube-apiserver (like
//! controller-runtime's envtest) with generated certificates, RBAC enforced and a dual-stack
//! service range, and hands out admin and non-admin clients, kubeconfigs and a `kubectl` helper.
//! The control-plane binaries are built from Go modules by `tests/setup/control-plane.sh` and
//! cached outside the repository. [`fixtures`] holds the set-up shared by suites that need
//! ferrolb's CRDs and manifests, and [`controller`] runs ferrolb's controller in-process (one
//! thread and runtime per replica, stopped gracefully or killed). The integration suites
//! themselves live in `tests/tests/`.

pub mod apiserver;
pub mod controller;
pub mod fixtures;
pub mod forward;
pub mod l2cluster;
pub mod netns;
pub mod routers;
pub mod speaker;

pub use apiserver::{ControlPlane, ControlPlaneBuilder};
