//! Test support for ferrolb, its integration suites and the lab.
//!
//! Everything here runs ferrolb against *real* parts instead of mocks:
//! - [`apiserver`] starts a throw-away etcd and kube-apiserver (like controller-runtime's
//!   envtest) with generated certificates, RBAC enforced and a dual-stack service range, and
//!   hands out admin and non-admin clients, kubeconfigs and a `kubectl` helper; the binaries are
//!   built from Go modules by `tests/setup/control-plane.sh` and cached outside the repository.
//! - [`fixtures`] holds the set-up shared by suites that need ferrolb's CRDs and manifests;
//!   [`controller`] runs ferrolb's controller in-process (one thread and runtime per replica).
//! - [`netns`] builds LANs of network namespaces; [`forward`] lets processes inside them reach
//!   the apiserver; [`speaker`] runs the real `ferrolb-speaker` binary in a node namespace;
//!   [`l2cluster`] puts these together (apiserver, nodes with speakers, a client); [`lab`] adds
//!   kube-proxy, pods and routes for the `ferrolb-lab` binary and the end-to-end suite.
//! - [`chaos`] is issue #13's chaos suite: random users, controller replicas killed, frozen and
//!   cut off, apiserver restarts and expired watches, and an independent checker.
//! - [`image`] writes container image archives (OCI layout + `docker save` manifest) with our
//!   own tar and SHA-256 code, for the ferrolb image and the real cluster's pause and echo images.
//! - [`cluster`] is a real Kubernetes cluster: control plane with kube-controller-manager and
//!   kube-scheduler, and nodes running containerd, runc and the kubelet in namespaces.
//! - [`helm`] runs the real `helm` for the chart's tests.
//! - [`audit`] reads the apiserver's audit log to show which verbs a ServiceAccount used.
//! - [`routers`] runs GoBGP, BIRD and FRR in namespaces and reads their routes (and BFD
//!   sessions) back; [`bgp_session`] runs ferrolb's own BGP session inside a namespace, and
//!   [`bfd_session`] its BFD session alone.
//! - [`scrape`] reads every speaker's and controller's `/metrics` in the lab as Prometheus
//!   would; [`dashboard`] checks the Grafana dashboard's queries against it, [`alerts`] has
//!   `promtool` evaluate the alert rules on it; [`plot`] draws the benchmarks' SVG charts.
//!
//! The integration suites themselves live in `tests/tests/`.

pub mod alerts;
pub mod apiserver;
pub mod audit;
pub mod bfd_session;
pub mod bgp_session;
pub mod bmp_collector;
pub mod chaos;
pub mod cluster;
pub mod controller;
pub mod dashboard;
pub mod fixtures;
pub mod forward;
pub mod helm;
pub mod image;
pub mod l2cluster;
pub mod lab;
pub mod netns;
pub mod plot;
pub mod routers;
pub mod scrape;
pub mod speaker;
pub mod stats;

pub use apiserver::{ControlPlane, ControlPlaneBuilder};
