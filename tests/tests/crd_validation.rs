//! The CRDs under `manifests/crds/` in a real kube-apiserver: they install, their descriptions
//! and short names reach kubectl users, the samples apply and round-trip through the typed
//! client, and every validation rule refuses what it should (with the field and a message a user
//! can act on) while accepting the valid values next to each boundary.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use ferrolb_api::{
    API_VERSION, BFDProfile, BFDProfileSpec, BGPAdvertisement, BGPAdvertisementSpec, BGPPeer,
    BGPPeerSpec, Community, CommunityAlias, CommunitySpec, Condition, ConfigStatus,
    ConfigurationResult, ConfigurationState, ConfigurationStateSpec, ConfigurationStateStatus,
    DynamicAsnMode, IPAddressPool, IPAddressPoolSpec, IPAddressPoolStatus, InterfaceName,
    L2Advertisement, L2AdvertisementSpec, LabelSelector, PreferredNodeSelector, SecretReference,
    ServiceAllocation, ServiceBGPStatus, ServiceBGPStatusSpec, ServiceBGPStatusStatus,
    ServiceL2Status, ServiceL2StatusSpec, ServiceL2StatusStatus,
};
use ferrolb_tests::ControlPlane;
use ferrolb_tests::apiserver::KubectlOutput;
use ferrolb_tests::fixtures::{
    ManifestDoc, NAMESPACE, control_plane_with_crds, crd_names, install_crds, read_manifest_dir,
    samples_dir,
};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::task::JoinSet;

// ---------------------------------------------------------------------------------------------
// Installation, descriptions and names.

#[tokio::test]
async fn all_crds_install_and_become_established() -> anyhow::Result<()> {
    let cp = ControlPlane::start().await?;
    install_crds(&cp).await?;

    // Every CRD is there, under ferrolb.io, with the kinds and short names of the types.
    let resources = cp
        .kubectl(&["api-resources", "--api-group=ferrolb.io", "-o", "wide"])
        .await?
        .into_stdout()?;
    for crd in ferrolb_api::all_crds() {
        let names = &crd.spec.names;
        let line = resources
            .lines()
            .find(|l| l.split_whitespace().next() == Some(names.plural.as_str()))
            .with_context(|| {
                format!("{} missing from api-resources:\n{resources}", names.plural)
            })?;
        assert!(line.contains(&names.kind), "{line}");
        assert!(line.contains("ferrolb.io/v1beta1"), "{line}");
        for short in names.short_names.iter().flatten() {
            assert!(
                line.contains(short.as_str()),
                "no short name {short}: {line}"
            );
        }
    }
    assert_eq!(
        resources.lines().count() - 1,
        crd_names().len(),
        "ferrolb.io serves other resources:\n{resources}"
    );

    // `kubectl explain` shows the descriptions written on the types, word for word.
    for (resource, field, phrase) in EXPLAINED {
        let path = format!("{resource}.{field}");
        let explained = explain(&cp, &path).await?;
        let want = words(&schema_description(resource, field)?);
        assert!(
            want.contains(phrase),
            "{path}: the CRD's description {want:?} lacks {phrase:?}"
        );
        assert!(
            words(&explained).contains(&want),
            "`kubectl explain {path}` does not show {want:?}:\n{explained}"
        );
    }
    let kind_doc = explain(&cp, "bgppeers").await?;
    assert!(
        words(&kind_doc).contains("A BGP router the speakers of the selected nodes peer with."),
        "{kind_doc}"
    );

    // Short names and the category work for kubectl users.
    ferrolb_tests::fixtures::create_namespace(&cp, NAMESPACE).await?;
    for (kind, spec) in [
        ("IPAddressPool", "{addresses: [192.0.2.0/28]}"),
        ("L2Advertisement", "{}"),
        ("BGPAdvertisement", "{}"),
        (
            "BGPPeer",
            "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}",
        ),
        ("BFDProfile", "{}"),
        ("Community", "{}"),
    ] {
        apply(&cp, &manifest(kind, "short", spec)).await?;
    }
    let cp = &cp;
    let get_names = |resources: &'static str| async move {
        let args = ["get", resources, "-n", NAMESPACE, "-o", "name"];
        let out = cp.kubectl(&args).await?.into_stdout()?;
        anyhow::Ok(out.lines().map(str::to_owned).collect::<BTreeSet<_>>())
    };
    let configuration: BTreeSet<String> = [
        "ipaddresspool",
        "l2advertisement",
        "bgpadvertisement",
        "bgppeer",
        "bfdprofile",
        "community",
    ]
    .iter()
    .map(|kind| format!("{kind}.ferrolb.io/short"))
    .collect();
    let by_short_names = get_names("ipp,l2adv,bgpadv,bgpp,bfdp,communities").await?;
    assert_eq!(by_short_names, configuration);
    assert_eq!(get_names("ferrolb").await?, configuration);
    let table = cp
        .kubectl(&["get", "ipp", "-n", NAMESPACE])
        .await?
        .into_stdout()?;
    assert!(table.contains("AUTO ASSIGN"), "{table}");
    assert!(table.contains("[\"192.0.2.0/28\"]"), "{table}");
    Ok(())
}

/// `kubectl explain <path>`, retried until the apiserver has published the CRD's OpenAPI
/// document (it does so asynchronously, shortly after the CRD is established).
async fn explain(cp: &ControlPlane, path: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cp.kubectl(&["explain", path]).await?;
        if out.success() || Instant::now() > deadline {
            return out.into_stdout();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fields whose description `kubectl explain` must show: (resource, field, a phrase of it).
#[rustfmt::skip]
const EXPLAINED: [(&str, &str, &str); 10] = [
    ("ipaddresspools", "spec.addresses", "The addresses of the pool"),
    ("ipaddresspools", "spec.autoAssign", "pick addresses from this pool"),
    ("bgppeers", "spec.holdTime", "0 disables keepalives"),
    ("bgppeers", "spec.passwordSecret", "kubernetes.io/basic-auth"),
    ("bgpadvertisements", "spec.communities", "Community alias names"),
    ("l2advertisements", "spec.preferredNodeSelectors.weight", "(1-100)"),
    ("bfdprofiles", "spec.detectMultiplier", "(2-255, default 3)"),
    ("communities", "spec.communities.name", "used in BGPAdvertisement"),
    ("servicel2statuses", "status.node", "answers ARP/NDP"),
    ("configurationstates", "status.errorSummary", "one per line"),
];

/// The description of `field` (dot-separated, arrays stepped through) in the CRD of `plural`.
fn schema_description(plural: &str, field: &str) -> anyhow::Result<String> {
    let crd = ferrolb_api::all_crds()
        .into_iter()
        .find(|crd| crd.spec.names.plural == plural)
        .with_context(|| format!("no CRD for {plural}"))?;
    let version = crd
        .spec
        .versions
        .first()
        .context("a CRD without versions")?;
    let mut schema = serde_json::to_value(&version.schema)?["openAPIV3Schema"].take();
    for part in field.split('.') {
        while schema.get("items").is_some() {
            schema = schema["items"].take();
        }
        schema = schema["properties"][part].take();
    }
    schema["description"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{plural}.{field} has no description"))
}

/// `text` with each run of whitespace turned into one space (kubectl explain re-wraps lines).
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// Samples and the typed client.

/// A namespaced ferrolb kind, for comparing what was written with what is read back.
trait Kind:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
{
    type Spec: PartialEq + Debug;
    type Status: PartialEq + Debug + Serialize;
    fn spec(&self) -> &Self::Spec;
    fn status(&self) -> Option<&Self::Status>;
}

macro_rules! kinds {
    ($($kind:ty => $spec:ty, $status:ty;)*) => {$(
        impl Kind for $kind {
            type Spec = $spec;
            type Status = $status;
            fn spec(&self) -> &$spec {
                &self.spec
            }
            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }
        }
    )*};
}

kinds! {
    IPAddressPool => IPAddressPoolSpec, IPAddressPoolStatus;
    L2Advertisement => L2AdvertisementSpec, ConfigStatus;
    BGPAdvertisement => BGPAdvertisementSpec, ConfigStatus;
    BGPPeer => BGPPeerSpec, ConfigStatus;
    BFDProfile => BFDProfileSpec, ConfigStatus;
    Community => CommunitySpec, ConfigStatus;
    ServiceL2Status => ServiceL2StatusSpec, ServiceL2StatusStatus;
    ServiceBGPStatus => ServiceBGPStatusSpec, ServiceBGPStatusStatus;
    ConfigurationState => ConfigurationStateSpec, ConfigurationStateStatus;
}

/// Checks that the objects of kind `K` in the samples are exactly those listed by the typed
/// client, spec for spec. The samples are read with serde's defaults and the server applies the
/// schema's defaults, so both sides are compared after defaulting. Returns the kind and how many
/// objects were compared.
async fn samples_round_trip<K: Kind>(
    client: &Client,
    samples: &[ManifestDoc],
) -> anyhow::Result<(String, usize)> {
    let kind = K::kind(&());
    let mut want = BTreeMap::new();
    for sample in samples.iter().filter(|s| s.kind() == kind) {
        let typed: K = serde_json::from_value(sample.doc.clone())
            .with_context(|| format!("{kind} {:?} in {}", sample.name(), sample.file.display()))?;
        want.insert(sample.name().to_owned(), typed);
    }
    let listed = Api::<K>::namespaced(client.clone(), NAMESPACE)
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing {kind}s"))?;
    let have: BTreeMap<String, K> = listed
        .items
        .into_iter()
        .map(|obj| (obj.meta().name.clone().unwrap_or_default(), obj))
        .collect();
    assert_eq!(
        have.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{kind}: listed names differ from the samples"
    );
    for (name, sample) in &want {
        assert_eq!(
            have[name].spec(),
            sample.spec(),
            "{kind} {name}: the stored spec differs from the sample"
        );
    }
    Ok((kind.into_owned(), want.len()))
}

#[tokio::test]
async fn every_sample_applies_and_round_trips_through_the_typed_client() -> anyhow::Result<()> {
    let cp = control_plane_with_crds().await?;
    let client = cp.client();

    let dir = samples_dir();
    let dir_arg = dir.to_str().context("the samples path is not UTF-8")?;
    let applied = cp.kubectl(&["apply", "-f", dir_arg]).await?;
    assert!(
        applied.success(),
        "`{}` failed:\n{}",
        applied.command,
        applied.stderr
    );

    let samples = read_manifest_dir(&dir)?;
    let checked = BTreeMap::from([
        samples_round_trip::<IPAddressPool>(&client, &samples).await?,
        samples_round_trip::<L2Advertisement>(&client, &samples).await?,
        samples_round_trip::<BGPAdvertisement>(&client, &samples).await?,
        samples_round_trip::<BGPPeer>(&client, &samples).await?,
        samples_round_trip::<BFDProfile>(&client, &samples).await?,
        samples_round_trip::<Community>(&client, &samples).await?,
    ]);
    // Every ferrolb kind in the samples was compared (a new kind must be added above).
    let sample_kinds: BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.api_version() == API_VERSION)
        .map(ManifestDoc::kind)
        .collect();
    for kind in &sample_kinds {
        assert!(
            checked.get(*kind).is_some_and(|n| *n > 0),
            "{kind} in the samples is not compared"
        );
    }
    assert!(
        checked.values().all(|n| *n > 0),
        "a configuration kind has no sample: {checked:?}"
    );

    // The schema's defaults are filled in by the server, not only by serde.
    for (target, path, want) in [
        ("ipp/lan", ".spec.autoAssign", "true"),
        ("ipp/lan", ".spec.avoidBuggyIPs", "false"),
        ("bgpp/router", ".spec.peerPort", "179"),
        ("bgpp/router", ".spec.enableGracefulRestart", "false"),
    ] {
        let jsonpath = format!("jsonpath={{{path}}}");
        let args = ["get", target, "-n", NAMESPACE, "-o", &jsonpath];
        let have = cp.kubectl(&args).await?.into_stdout()?;
        assert_eq!(have, want, "{target} {path}");
    }

    // One object of every kind, written and read back with the typed client.
    create_and_read_back(&client, typed_pool()).await?;
    create_and_read_back(&client, typed_l2_advertisement()).await?;
    create_and_read_back(&client, typed_bgp_advertisement()).await?;
    create_and_read_back(&client, typed_peer()).await?;
    create_and_read_back(&client, typed_bfd_profile()).await?;
    create_and_read_back(&client, typed_community()).await?;
    create_and_read_back(&client, typed_l2_status()).await?;
    create_and_read_back(&client, typed_bgp_status()).await?;
    create_and_read_back(&client, typed_configuration_state()).await?;
    Ok(())
}

/// Creates `obj` (in [`NAMESPACE`]), writes its status through the status subresource if it has
/// one, and checks that a get returns the same spec and status.
async fn create_and_read_back<K: Kind>(client: &Client, obj: K) -> anyhow::Result<()> {
    let kind = K::kind(&());
    let name = obj.meta().name.clone().context("objects need a name")?;
    let api = Api::<K>::namespaced(client.clone(), NAMESPACE);
    let created = api
        .create(&PostParams::default(), &obj)
        .await
        .with_context(|| format!("creating {kind} {name}"))?;
    assert_eq!(created.spec(), obj.spec(), "{kind} {name} as created");
    if let Some(status) = obj.status() {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .with_context(|| format!("writing the status of {kind} {name}"))?;
    }
    let read = api
        .get(&name)
        .await
        .with_context(|| format!("reading {kind} {name}"))?;
    assert_eq!(read.spec(), obj.spec(), "{kind} {name}: spec read back");
    assert_eq!(
        read.status(),
        obj.status(),
        "{kind} {name}: status read back"
    );
    Ok(())
}

fn in_namespace<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().namespace = Some(NAMESPACE.to_owned());
    obj
}

fn labels(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..LabelSelector::default()
    }
}

/// A `Valid` condition with a whole-second timestamp (the API stores seconds).
fn valid_condition(status: &str, reason: &str) -> Condition {
    serde_json::from_value(json!({
        "type": ferrolb_api::CONDITION_VALID,
        "status": status,
        "reason": reason,
        "message": format!("test condition: {reason}"),
        "lastTransitionTime": "2025-01-02T03:04:05Z",
        "observedGeneration": 1,
    }))
    .expect("a valid Condition literal")
}

fn typed_pool() -> IPAddressPool {
    let mut pool = IPAddressPool::new(
        "typed",
        IPAddressPoolSpec {
            addresses: vec![
                "203.0.113.0/28".into(),
                "2001:db8:5::1 - 2001:db8:5::ff".into(),
            ],
            auto_assign: false,
            avoid_buggy_ips: true,
            service_allocation: Some(ServiceAllocation {
                priority: Some(5),
                namespaces: vec!["web".to_owned(), "api".to_owned()],
                namespace_selectors: vec![labels(&[("tier", "web")])],
                service_selectors: vec![labels(&[("app", "shop")])],
            }),
        },
    );
    pool.status = Some(IPAddressPoolStatus {
        assigned_ipv4: 2,
        assigned_ipv6: 1,
        available_ipv4: 14,
        available_ipv6: 254,
        conditions: vec![valid_condition("True", "InUse")],
    });
    in_namespace(pool)
}

fn typed_l2_advertisement() -> L2Advertisement {
    let mut adv = L2Advertisement::new(
        "typed",
        L2AdvertisementSpec {
            ip_address_pools: vec!["typed".to_owned()],
            ip_address_pool_selectors: vec![labels(&[("announce", "l2")])],
            node_selectors: vec![labels(&[("kubernetes.io/os", "linux")])],
            interfaces: vec!["eth0".to_owned(), "bond0.100".to_owned()],
            service_selectors: vec![labels(&[("app", "shop")])],
            preferred_node_selectors: vec![PreferredNodeSelector {
                weight: 100,
                preference: labels(&[("edge", "true")]),
            }],
        },
    );
    adv.status = Some(ConfigStatus {
        conditions: vec![valid_condition("False", "UnknownPool")],
    });
    in_namespace(adv)
}

fn typed_bgp_advertisement() -> BGPAdvertisement {
    in_namespace(BGPAdvertisement::new(
        "typed",
        BGPAdvertisementSpec {
            aggregation_length: Some(24),
            aggregation_length_v6: Some(64),
            local_pref: Some(4_294_967_295),
            communities: vec![
                "no-export-lab".into(),
                "large:1:2:3".into(),
                "65535:0".into(),
            ],
            ip_address_pools: vec!["typed".to_owned()],
            ip_address_pool_selectors: vec![labels(&[("announce", "bgp")])],
            node_selectors: vec![labels(&[("rack", "r1")])],
            peers: vec!["typed".to_owned()],
            service_selectors: Vec::new(),
        },
    ))
}

fn typed_peer() -> BGPPeer {
    let mut peer = BGPPeer::new(
        "typed",
        BGPPeerSpec {
            my_asn: 4_294_967_295,
            peer_asn: None,
            dynamic_asn: Some(DynamicAsnMode::External),
            local_asn: Some(64_500),
            peer_address: None,
            interface: Some("eth1".to_owned()),
            source_address: Some("2001:db8::2".to_owned()),
            peer_port: 1179,
            hold_time: Some("1m30s".to_owned()),
            keepalive_time: Some("30s".to_owned()),
            connect_time: Some("10s".to_owned()),
            router_id: Some("10.0.0.1".to_owned()),
            node_selectors: vec![labels(&[("rack", "r1")])],
            password: None,
            password_secret: Some(SecretReference {
                name: "md5".to_owned(),
                namespace: Some(NAMESPACE.to_owned()),
            }),
            bfd_profile: Some("typed".to_owned()),
            enable_graceful_restart: true,
            ebgp_multi_hop: true,
            vrf: Some("red".to_owned()),
            disable_mp: true,
            dual_stack_address_family: true,
        },
    );
    peer.status = Some(ConfigStatus {
        conditions: vec![valid_condition("True", "InUse")],
    });
    in_namespace(peer)
}

fn typed_bfd_profile() -> BFDProfile {
    in_namespace(BFDProfile::new(
        "typed",
        BFDProfileSpec {
            receive_interval: Some(10),
            transmit_interval: Some(60_000),
            detect_multiplier: Some(255),
            echo_interval: Some(50),
            echo_mode: Some(true),
            passive_mode: Some(false),
            minimum_ttl: Some(254),
        },
    ))
}

fn typed_community() -> Community {
    in_namespace(Community::new(
        "typed",
        CommunitySpec {
            communities: vec![
                CommunityAlias {
                    name: "no-export-lab".to_owned(),
                    value: "65535:65281".into(),
                },
                CommunityAlias {
                    name: "big.one_2".to_owned(),
                    value: "large:4294967295:0:1".into(),
                },
            ],
        },
    ))
}

fn typed_l2_status() -> ServiceL2Status {
    let mut status = ServiceL2Status::new("typed", ServiceL2StatusSpec {});
    status.status = Some(ServiceL2StatusStatus {
        node: Some("node-a".to_owned()),
        service_name: Some("web".to_owned()),
        service_namespace: Some("default".to_owned()),
        interfaces: vec![InterfaceName {
            name: "eth0".to_owned(),
        }],
    });
    in_namespace(status)
}

fn typed_bgp_status() -> ServiceBGPStatus {
    let mut status = ServiceBGPStatus::new("typed", ServiceBGPStatusSpec {});
    status.status = Some(ServiceBGPStatusStatus {
        node: Some("node-a".to_owned()),
        service_name: Some("web".to_owned()),
        service_namespace: Some("default".to_owned()),
        peers: vec!["router".to_owned(), "typed".to_owned()],
    });
    in_namespace(status)
}

fn typed_configuration_state() -> ConfigurationState {
    let mut state = ConfigurationState::new("speaker-node-a", ConfigurationStateSpec {});
    state.status = Some(ConfigurationStateStatus {
        result: Some(ConfigurationResult::Invalid),
        error_summary: Some("BGPPeer router: unknown BFDProfile fast\n".to_owned()),
        conditions: vec![valid_condition("False", "ConfigurationInvalid")],
    });
    in_namespace(state)
}

// ---------------------------------------------------------------------------------------------
// Validation rules, as a kubectl user meets them.

const POOL: &str = "IPAddressPool";
const PEER: &str = "BGPPeer";
const BGPADV: &str = "BGPAdvertisement";
const L2ADV: &str = "L2Advertisement";
const BFD: &str = "BFDProfile";
const COMM: &str = "Community";

/// A valid spec per kind; each case's spec is merged over it (RFC 7386: `null` removes a field,
/// lists are replaced).
fn base_spec(kind: &str) -> &'static str {
    match kind {
        POOL => "{addresses: [192.0.2.0/28]}",
        PEER => "{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1}",
        _ => "{}",
    }
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    Accepted,
    /// Refused; one line of kubectl's error has `<field>: ` and `message`.
    Refused {
        field: &'static str,
        message: &'static str,
    },
}

#[derive(Debug, Clone, Copy)]
struct Case {
    kind: &'static str,
    what: &'static str,
    /// YAML merged over [`base_spec`].
    spec: &'static str,
    expect: Expect,
}

/// A case that must be accepted.
const fn ok(kind: &'static str, what: &'static str, spec: &'static str) -> Case {
    Case {
        kind,
        what,
        spec,
        expect: Expect::Accepted,
    }
}

/// A case that must be refused with `message` on `field`.
const fn no(
    kind: &'static str,
    what: &'static str,
    spec: &'static str,
    field: &'static str,
    message: &'static str,
) -> Case {
    Case {
        kind,
        what,
        spec,
        expect: Expect::Refused { field, message },
    }
}

const ADDRESS: &str = "must be a CIDR (192.0.2.0/24) or a range of one address family (192.0.2.10-192.0.2.20) of unicast addresses";
const COMMUNITY: &str = "must be a legacy community AS:VALUE (two numbers 0-65535), a large community large:A:B:C (three numbers 0-4294967295) or a Community alias name";
const COMMUNITY_VALUE: &str = "must be a legacy community AS:VALUE (two numbers 0-65535) or a large community large:A:B:C (three numbers 0-4294967295)";
const ONE_PEER_ASN: &str = "exactly one of peerASN and dynamicASN must be set";
const ONE_PEER_ADDRESS: &str = "exactly one of peerAddress and interface must be set";
const HOLD_TIME: &str = "holdTime must be 0 (no keepalives) or at least 3s";
const CONNECT_TIME: &str = "connectTime must be a whole number of seconds between 1s and 65535s";
const KEEPALIVE_ALONE: &str = "keepaliveTime without holdTime implies holdTime = 3 x keepaliveTime, which must be 0 or at least 3s";
const SELECTORS_AND_AGGREGATION: &str = "serviceSelectors and a non-default aggregationLength/aggregationLengthV6 are mutually exclusive";
const IP: &str = "must be an IPv4 or IPv6 address";
const DUPLICATE: &str = "Duplicate value";
const SHOULD_MATCH: &str = "in body should match";

/// The rules, one line per case: `ok(kind, what, spec)` must be accepted and
/// `no(kind, what, spec, field, message)` refused with `message` on `field`; `spec` is YAML merged
/// over [`base_spec`] (`null` removes a field). Each refused value sits next to the valid values
/// at the same boundary, so a rule that refuses too much fails as surely as one that refuses too
/// little.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        // IPAddressPool.spec.addresses
        ok(POOL, "an IPv4 CIDR", "{addresses: [192.0.2.0/24]}"),
        ok(POOL, "an IPv6 CIDR", "{addresses: ['2001:db8::/64']}"),
        ok(POOL, "a single IPv4 address as /32", "{addresses: [192.0.2.7/32]}"),
        ok(POOL, "an IPv4 range", "{addresses: [192.0.2.10-192.0.2.20]}"),
        ok(POOL, "a range with spaces around '-'", "{addresses: ['192.0.2.10 - 192.0.2.20']}"),
        ok(POOL, "an IPv6 range", "{addresses: ['2001:db8::10-2001:db8::20']}"),
        ok(POOL, "IPv4 and IPv6 entries in one pool", "{addresses: [192.0.2.0/28, '2001:db8::/120']}"),
        no(POOL, "a prefix length of 33", "{addresses: [1.2.3.4/33]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "an IPv6 prefix length of 129", "{addresses: ['2001:db8::/129']}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a link-local IPv6 CIDR", "{addresses: ['fe80::/10']}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a link-local IPv4 CIDR", "{addresses: [169.254.0.0/16]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a loopback CIDR", "{addresses: [127.0.0.0/8]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a multicast CIDR", "{addresses: [224.0.0.0/4]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "the whole IPv4 space", "{addresses: [0.0.0.0/0]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a range mixing IPv4 and IPv6", "{addresses: ['192.0.2.1-2001:db8::1']}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a range with three ends", "{addresses: [192.0.2.1-192.0.2.5-192.0.2.9]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a link-local IPv6 range", "{addresses: ['fe80::1-fe80::9']}", "spec.addresses[0]", ADDRESS),
        no(POOL, "garbage text", "{addresses: [garbage]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "garbage text with a dash", "{addresses: [not-an-address]}", "spec.addresses[0]", ADDRESS),
        no(POOL, "a bad second entry (its index is reported)", "{addresses: [192.0.2.0/28, bogus]}", "spec.addresses[1]", ADDRESS),
        no(POOL, "an empty list of addresses", "{addresses: []}", "spec.addresses", "should have at least 1 items"),
        no(POOL, "no addresses at all", "{addresses: null}", "spec.addresses", "Required value"),
        // IPAddressPool.spec.serviceAllocation
        ok(POOL, "distinct namespaces", "{serviceAllocation: {namespaces: [web, api], priority: 0}}"),
        no(POOL, "duplicate namespaces", "{serviceAllocation: {namespaces: [web, web]}}", "spec.serviceAllocation.namespaces[1]", DUPLICATE),
        no(POOL, "a negative priority", "{serviceAllocation: {priority: -1}}", "spec.serviceAllocation.priority", "should be greater than or equal to 0"),

        // BGPPeer: AS numbers
        ok(PEER, "the base peer", "{}"),
        no(PEER, "myASN 0", "{myASN: 0}", "spec.myASN", "should be greater than or equal to 1"),
        ok(PEER, "myASN 4294967295", "{myASN: 4294967295}"),
        no(PEER, "myASN 4294967296", "{myASN: 4294967296}", "spec.myASN", "should be less than or equal to 4294967295"),
        no(PEER, "both peerASN and dynamicASN", "{dynamicASN: external}", "spec", ONE_PEER_ASN),
        no(PEER, "neither peerASN nor dynamicASN", "{peerASN: null}", "spec", ONE_PEER_ASN),
        ok(PEER, "dynamicASN internal alone", "{peerASN: null, dynamicASN: internal}"),
        no(PEER, "dynamicASN sideways", "{peerASN: null, dynamicASN: sideways}", "spec.dynamicASN", "Unsupported value: \"sideways\""),
        // BGPPeer: where the peer is
        no(PEER, "both peerAddress and interface", "{interface: eth1}", "spec", ONE_PEER_ADDRESS),
        no(PEER, "neither peerAddress nor interface", "{peerAddress: null}", "spec", ONE_PEER_ADDRESS),
        ok(PEER, "interface alone (unnumbered)", "{peerAddress: null, interface: eth1}"),
        no(PEER, "an interface name with '/'", "{peerAddress: null, interface: eth/1}", "spec.interface", SHOULD_MATCH),
        no(PEER, "peerAddress 192.0.2.256", "{peerAddress: 192.0.2.256}", "spec.peerAddress", IP),
        no(PEER, "peerAddress a host name", "{peerAddress: router.example.com}", "spec.peerAddress", IP),
        ok(PEER, "an IPv6 peerAddress", "{peerAddress: '2001:db8::1'}"),
        no(PEER, "sourceAddress IPv6 for an IPv4 peer", "{sourceAddress: '2001:db8::2'}", "spec.sourceAddress", "sourceAddress and peerAddress must be of the same address family"),
        no(PEER, "sourceAddress IPv4 for an IPv6 peer", "{peerAddress: '2001:db8::1', sourceAddress: 192.0.2.2}", "spec.sourceAddress", "sourceAddress and peerAddress must be of the same address family"),
        ok(PEER, "sourceAddress of the peer's family", "{sourceAddress: 192.0.2.2}"),
        no(PEER, "sourceAddress not an IP", "{sourceAddress: eth0}", "spec.sourceAddress", IP),
        no(PEER, "routerID IPv6", "{routerID: '2001:db8::1'}", "spec.routerID", "must be an IPv4 address"),
        ok(PEER, "routerID IPv4", "{routerID: 10.0.0.1}"),
        no(PEER, "peerPort 0", "{peerPort: 0}", "spec.peerPort", "should be greater than or equal to 1"),
        no(PEER, "peerPort 70000", "{peerPort: 70000}", "spec.peerPort", "should be less than or equal to 65535"),
        ok(PEER, "peerPort 1", "{peerPort: 1}"),
        ok(PEER, "peerPort 65535", "{peerPort: 65535}"),
        // BGPPeer: secrets
        no(PEER, "both password and passwordSecret", "{password: s3cret, passwordSecret: {name: md5}}", "spec", "password and passwordSecret are mutually exclusive"),
        ok(PEER, "password alone", "{password: s3cret}"),
        ok(PEER, "passwordSecret alone", "{passwordSecret: {name: md5}}"),
        // BGPPeer: timers
        no(PEER, "holdTime 2s", "{holdTime: 2s}", "spec.holdTime", HOLD_TIME),
        no(PEER, "holdTime 2999ms", "{holdTime: 2999ms}", "spec.holdTime", HOLD_TIME),
        ok(PEER, "holdTime 0s", "{holdTime: 0s}"),
        ok(PEER, "holdTime 3s", "{holdTime: 3s}"),
        ok(PEER, "holdTime 1m30s", "{holdTime: 1m30s}"),
        no(PEER, "holdTime '3 days'", "{holdTime: 3 days}", "spec.holdTime", SHOULD_MATCH),
        no(PEER, "keepaliveTime '-1s'", "{keepaliveTime: -1s}", "spec.keepaliveTime", SHOULD_MATCH),
        no(PEER, "keepaliveTime above holdTime", "{holdTime: 9s, keepaliveTime: 10s}", "spec.keepaliveTime", "keepaliveTime must not exceed holdTime"),
        ok(PEER, "keepaliveTime equal to holdTime", "{holdTime: 9s, keepaliveTime: 9s}"),
        no(PEER, "keepaliveTime 500ms without holdTime", "{keepaliveTime: 500ms}", "spec.keepaliveTime", KEEPALIVE_ALONE),
        ok(PEER, "keepaliveTime 1s without holdTime", "{keepaliveTime: 1s}"),
        ok(PEER, "keepaliveTime 0s without holdTime", "{keepaliveTime: 0s}"),
        no(PEER, "connectTime 1500ms", "{connectTime: 1500ms}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 0s", "{connectTime: 0s}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 999ms", "{connectTime: 999ms}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 65536s", "{connectTime: 65536s}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 70000s", "{connectTime: 70000s}", "spec.connectTime", CONNECT_TIME),
        ok(PEER, "connectTime 1s", "{connectTime: 1s}"),
        ok(PEER, "connectTime 1000ms", "{connectTime: 1000ms}"),
        ok(PEER, "connectTime 2m", "{connectTime: 2m}"),
        ok(PEER, "connectTime 65535s", "{connectTime: 65535s}"),
        // BGPPeer: multi-hop
        no(PEER, "ebgpMultiHop with peerASN equal to myASN", "{peerASN: 64513, ebgpMultiHop: true}", "spec.ebgpMultiHop", "ebgpMultiHop cannot be set for an iBGP peer"),
        no(PEER, "ebgpMultiHop with dynamicASN internal", "{peerASN: null, dynamicASN: internal, ebgpMultiHop: true}", "spec.ebgpMultiHop", "ebgpMultiHop cannot be set for an iBGP peer"),
        ok(PEER, "ebgpMultiHop for an eBGP peer", "{ebgpMultiHop: true}"),
        ok(PEER, "ebgpMultiHop with dynamicASN external", "{peerASN: null, dynamicASN: external, ebgpMultiHop: true}"),
        ok(PEER, "ebgpMultiHop false for an iBGP peer", "{peerASN: 64513, ebgpMultiHop: false}"),

        // BGPAdvertisement
        no(BGPADV, "aggregationLength 33", "{aggregationLength: 33}", "spec.aggregationLength", "should be less than or equal to 32"),
        no(BGPADV, "aggregationLength 0", "{aggregationLength: 0}", "spec.aggregationLength", "should be greater than or equal to 1"),
        ok(BGPADV, "aggregationLength 1", "{aggregationLength: 1}"),
        ok(BGPADV, "aggregationLength 32", "{aggregationLength: 32}"),
        no(BGPADV, "aggregationLengthV6 129", "{aggregationLengthV6: 129}", "spec.aggregationLengthV6", "should be less than or equal to 128"),
        ok(BGPADV, "aggregationLengthV6 128", "{aggregationLengthV6: 128}"),
        no(BGPADV, "serviceSelectors with aggregationLength 24", "{aggregationLength: 24, serviceSelectors: [{matchLabels: {app: web}}]}", "spec", SELECTORS_AND_AGGREGATION),
        no(BGPADV, "serviceSelectors with aggregationLengthV6 64", "{aggregationLengthV6: 64, serviceSelectors: [{matchLabels: {app: web}}]}", "spec", SELECTORS_AND_AGGREGATION),
        ok(BGPADV, "serviceSelectors with aggregationLength 32", "{aggregationLength: 32, serviceSelectors: [{matchLabels: {app: web}}]}"),
        ok(BGPADV, "serviceSelectors with aggregationLengthV6 128", "{aggregationLengthV6: 128, serviceSelectors: [{matchLabels: {app: web}}]}"),
        ok(BGPADV, "aggregationLength 24 without serviceSelectors", "{aggregationLength: 24, aggregationLengthV6: 64}"),
        no(BGPADV, "community 65536:1", "{communities: ['65536:1']}", "spec.communities[0]", COMMUNITY),
        no(BGPADV, "community 1:65536", "{communities: ['1:65536']}", "spec.communities[0]", COMMUNITY),
        no(BGPADV, "community large:1:2:4294967296", "{communities: ['large:1:2:4294967296']}", "spec.communities[0]", COMMUNITY),
        no(BGPADV, "community 1:2:3", "{communities: ['1:2:3']}", "spec.communities[0]", COMMUNITY),
        no(BGPADV, "community large:1:2", "{communities: ['large:1:2']}", "spec.communities[0]", COMMUNITY),
        no(BGPADV, "duplicate communities", "{communities: ['65535:65281', '65535:65281']}", "spec.communities[1]", DUPLICATE),
        ok(BGPADV, "community 65535:65535", "{communities: ['65535:65535']}"),
        ok(BGPADV, "community 0:0", "{communities: ['0:0']}"),
        ok(BGPADV, "community large:4294967295:0:1", "{communities: ['large:4294967295:0:1']}"),
        ok(BGPADV, "a community alias name", "{communities: [no-export-lab, '64513:100']}"),
        no(BGPADV, "duplicate peers", "{peers: [router, router]}", "spec.peers[1]", DUPLICATE),

        // L2Advertisement
        no(L2ADV, "an interface name of 16 characters", "{interfaces: [abcdefghijklmnop]}", "spec.interfaces[0]", "Too long"),
        ok(L2ADV, "an interface name of 15 characters", "{interfaces: [abcdefghijklmno]}"),
        no(L2ADV, "an interface name with a space", "{interfaces: ['eth 0']}", "spec.interfaces[0]", SHOULD_MATCH),
        no(L2ADV, "duplicate interfaces", "{interfaces: [eth0, eth0]}", "spec.interfaces[1]", DUPLICATE),
        ok(L2ADV, "distinct interfaces", "{interfaces: [eth0, bond0.100]}"),
        no(L2ADV, "duplicate ipAddressPools", "{ipAddressPools: [lan, lan]}", "spec.ipAddressPools[1]", DUPLICATE),
        no(L2ADV, "preference weight 0", "{preferredNodeSelectors: [{weight: 0, preference: {}}]}", "spec.preferredNodeSelectors[0].weight", "should be greater than or equal to 1"),
        no(L2ADV, "preference weight 101", "{preferredNodeSelectors: [{weight: 101, preference: {}}]}", "spec.preferredNodeSelectors[0].weight", "should be less than or equal to 100"),
        ok(L2ADV, "preference weight 1", "{preferredNodeSelectors: [{weight: 1, preference: {matchLabels: {edge: 'true'}}}]}"),
        ok(L2ADV, "preference weight 100", "{preferredNodeSelectors: [{weight: 100, preference: {}}]}"),

        // BFDProfile
        no(BFD, "receiveInterval 5", "{receiveInterval: 5}", "spec.receiveInterval", "should be greater than or equal to 10"),
        ok(BFD, "receiveInterval 10", "{receiveInterval: 10}"),
        no(BFD, "transmitInterval 60001", "{transmitInterval: 60001}", "spec.transmitInterval", "should be less than or equal to 60000"),
        ok(BFD, "transmitInterval 60000", "{transmitInterval: 60000}"),
        no(BFD, "detectMultiplier 1", "{detectMultiplier: 1}", "spec.detectMultiplier", "should be greater than or equal to 2"),
        no(BFD, "detectMultiplier 256", "{detectMultiplier: 256}", "spec.detectMultiplier", "should be less than or equal to 255"),
        ok(BFD, "detectMultiplier 2", "{detectMultiplier: 2}"),
        ok(BFD, "detectMultiplier 255", "{detectMultiplier: 255}"),
        no(BFD, "minimumTtl 255", "{minimumTtl: 255}", "spec.minimumTtl", "should be less than or equal to 254"),
        no(BFD, "minimumTtl 0", "{minimumTtl: 0}", "spec.minimumTtl", "should be greater than or equal to 1"),
        ok(BFD, "minimumTtl 254", "{minimumTtl: 254}"),
        no(BFD, "echoInterval without echoMode", "{echoInterval: 50}", "spec.echoInterval", "echoInterval only applies with echoMode: true"),
        no(BFD, "echoInterval with echoMode false", "{echoInterval: 50, echoMode: false}", "spec.echoInterval", "echoInterval only applies with echoMode: true"),
        ok(BFD, "echoInterval with echoMode true", "{echoInterval: 50, echoMode: true}"),
        ok(BFD, "echoMode without echoInterval", "{echoMode: true}"),

        // Community
        no(COMM, "value 65536:1", "{communities: [{name: a, value: '65536:1'}]}", "spec.communities[0].value", COMMUNITY_VALUE),
        no(COMM, "value large:1:2:4294967296", "{communities: [{name: a, value: 'large:1:2:4294967296'}]}", "spec.communities[0].value", COMMUNITY_VALUE),
        no(COMM, "a value that is an alias name", "{communities: [{name: a, value: no-export}]}", "spec.communities[0].value", COMMUNITY_VALUE),
        no(COMM, "duplicate alias names", "{communities: [{name: a, value: '1:1'}, {name: a, value: '1:2'}]}", "spec.communities[1]", DUPLICATE),
        no(COMM, "an alias name with ':'", "{communities: [{name: 'a:b', value: '1:1'}]}", "spec.communities[0].name", SHOULD_MATCH),
        ok(COMM, "value 65535:65281", "{communities: [{name: no-export, value: '65535:65281'}]}"),
        ok(COMM, "value large:4294967295:0:1", "{communities: [{name: big, value: 'large:4294967295:0:1'}]}"),
        ok(COMM, "two aliases", "{communities: [{name: a, value: '1:1'}, {name: b, value: '1:1'}]}"),
    ]
}

/// RFC 7386 JSON merge patch: `patch` over `target`.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(target) = target {
        for (key, value) in fields {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The manifest of `case`, named `name`, as YAML (JSON is YAML).
fn case_manifest(case: &Case, name: &str) -> anyhow::Result<String> {
    let mut spec: Value = serde_saphyr::from_str(base_spec(case.kind))?;
    let overlay: Value = serde_saphyr::from_str(case.spec)
        .with_context(|| format!("the spec of case {:?} is not YAML", case.what))?;
    merge(&mut spec, &overlay);
    let manifest = json!({
        "apiVersion": API_VERSION,
        "kind": case.kind,
        "metadata": { "name": name, "namespace": NAMESPACE },
        "spec": spec,
    });
    Ok(format!("{manifest:#}\n"))
}

/// What went wrong with `case`, if anything.
fn judge(case: &Case, name: &str, out: &KubectlOutput) -> Option<String> {
    match case.expect {
        Expect::Accepted if out.success() => None,
        Expect::Accepted => Some("was refused, but it is valid".to_owned()),
        Expect::Refused { .. } if out.success() => {
            Some("was accepted, but it is invalid".to_owned())
        }
        Expect::Refused { field, message } => {
            let invalid = format!("The {} \"{name}\" is invalid", case.kind);
            let prefix = format!("{field}: ");
            let on_field = out
                .stderr
                .lines()
                .any(|line| line_has_field(line, &prefix) && line.contains(message));
            if !out.stderr.contains(&invalid) {
                Some(format!(
                    "was refused, but not as an invalid object ({invalid:?})"
                ))
            } else if !on_field {
                Some(format!(
                    "was refused, but no line reports {message:?} on {field:?}"
                ))
            } else {
                None
            }
        }
    }
}

/// Whether `line` reports an error on exactly the field `prefix` (`spec.x: `), not on a field
/// whose path merely ends the same way.
fn line_has_field(line: &str, prefix: &str) -> bool {
    line.match_indices(prefix)
        .any(|(at, _)| at == 0 || matches!(line.as_bytes()[at - 1], b' ' | b'\t'))
}

/// How many kubectl processes apply cases at the same time.
const PARALLEL_KUBECTLS: usize = 8;

/// Applies `case` (number `i`) with `kubectl apply -f -`; a report if it did not go as expected.
async fn run_case(cp: &ControlPlane, i: usize, case: &Case) -> anyhow::Result<Option<String>> {
    let name = format!("case-{i:03}");
    let manifest = case_manifest(case, &name)?;
    let out = cp
        .kubectl_with(cp.kubeconfig_path(), &["apply", "-f", "-"], Some(&manifest))
        .await?;
    Ok(judge(case, &name, &out).map(|problem| {
        format!(
            "case {i} ({} {name}: {}) {problem}\n  expected: {:?}\n  manifest: {}\n  \
             kubectl exit: {}\n  kubectl stdout: {}\n  kubectl stderr:\n{}",
            case.kind,
            case.what,
            case.expect,
            words(&manifest),
            out.status,
            out.stdout.trim(),
            out.stderr.trim_end()
        )
    }))
}

/// Runs every case and returns the reports of the failed ones, in table order.
async fn run_cases(cp: &Arc<ControlPlane>, cases: &[Case]) -> anyhow::Result<Vec<String>> {
    let mut workers = JoinSet::new();
    for worker in 0..PARALLEL_KUBECTLS {
        let cp = Arc::clone(cp);
        let mine: Vec<(usize, Case)> = cases
            .iter()
            .copied()
            .enumerate()
            .skip(worker)
            .step_by(PARALLEL_KUBECTLS)
            .collect();
        workers.spawn(async move {
            let mut failures = Vec::new();
            for (i, case) in mine {
                if let Some(report) = run_case(&cp, i, &case).await? {
                    failures.push((i, report));
                }
            }
            anyhow::Ok(failures)
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = workers.join_next().await {
        failures.extend(joined??);
    }
    failures.sort_by_key(|(i, _)| *i);
    Ok(failures.into_iter().map(|(_, report)| report).collect())
}

/// Fails with every report if any case failed.
fn check_reports(failures: &[String], total: usize) -> anyhow::Result<()> {
    if !failures.is_empty() {
        bail!(
            "{} of {total} cases failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    Ok(())
}

#[tokio::test]
async fn invalid_objects_are_refused_with_the_field_and_message_and_valid_neighbours_accepted()
-> anyhow::Result<()> {
    let cp = Arc::new(control_plane_with_crds().await?);
    let cases = cases();
    // Guard the table itself: every rule has a refused case and a neighbour that is accepted.
    for kind in [POOL, PEER, BGPADV, L2ADV, BFD, COMM] {
        let of_kind = || cases.iter().filter(|c| c.kind == kind);
        ensure!(
            of_kind().any(|c| matches!(c.expect, Expect::Accepted)),
            "{kind}: no valid case"
        );
        ensure!(
            of_kind().any(|c| matches!(c.expect, Expect::Refused { .. })),
            "{kind}: no invalid case"
        );
    }
    check_reports(&run_cases(&cp, &cases).await?, cases.len())
}

// ---------------------------------------------------------------------------------------------
// Immutable fields.

/// `kubectl apply -f -` of `manifest`.
async fn kubectl_apply(cp: &ControlPlane, manifest: &str) -> anyhow::Result<KubectlOutput> {
    cp.kubectl_with(cp.kubeconfig_path(), &["apply", "-f", "-"], Some(manifest))
        .await
}

/// `kubectl apply -f -` of `manifest`; an error with kubectl's stderr if it is refused.
async fn apply(cp: &ControlPlane, manifest: &str) -> anyhow::Result<()> {
    kubectl_apply(cp, manifest).await?.into_stdout().map(drop)
}

/// Options of `kubectl patch`: the patch type, and the status subresource.
const MERGE: &[&str] = &["--type=merge"];
const JSON_PATCH: &[&str] = &["--type=json"];
const STATUS_MERGE: &[&str] = &["--subresource=status", "--type=merge"];
const STATUS_JSON_PATCH: &[&str] = &["--subresource=status", "--type=json"];

/// `kubectl patch <target> -n ferrolb-system <how…> -p <patch>`, e.g. target `bgppeer/gr`.
async fn kubectl_patch(
    cp: &ControlPlane,
    target: &str,
    how: &[&str],
    patch: &str,
) -> anyhow::Result<KubectlOutput> {
    let mut args = vec!["patch", target, "-n", NAMESPACE];
    args.extend_from_slice(how);
    args.extend(["-p", patch]);
    cp.kubectl(&args).await
}

/// A manifest of `kind` named `name` in [`NAMESPACE`] with `spec` (YAML flow).
fn manifest(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: {API_VERSION}\nkind: {kind}\nmetadata: {{name: {name}, namespace: \
         {NAMESPACE}}}\nspec: {spec}\n"
    )
}

/// Checks that `out` is a refusal whose stderr has `field: ` and `message` on one line.
fn assert_refused(out: &KubectlOutput, field: &str, message: &str) {
    let prefix = format!("{field}: ");
    assert!(
        !out.success()
            && out
                .stderr
                .lines()
                .any(|l| line_has_field(l, &prefix) && l.contains(message)),
        "`{}` should be refused with {message:?} on {field:?}; exit {}, stderr:\n{}",
        out.command,
        out.status,
        out.stderr
    );
}

#[tokio::test]
async fn immutable_fields_refuse_changes_once_set() -> anyhow::Result<()> {
    let cp = control_plane_with_crds().await?;
    let client = cp.client();
    let peer = |graceful: bool, hold: &str| {
        let spec = format!(
            "{{myASN: 64513, peerASN: 64512, peerAddress: 192.0.2.1, holdTime: {hold}, \
             enableGracefulRestart: {graceful}}}"
        );
        manifest("BGPPeer", "gr", &spec)
    };
    const GRACEFUL: &str = "spec.enableGracefulRestart";
    const GRACEFUL_IMMUTABLE: &str = "enableGracefulRestart is immutable";

    // BGPPeer.spec.enableGracefulRestart: other fields change, it does not (not even by removing
    // it, which defaults it to false).
    apply(&cp, &peer(true, "90s")).await?;
    apply(&cp, &peer(true, "30s")).await?;
    let to_false = r#"{"spec":{"enableGracefulRestart":false}}"#;
    let patched = kubectl_patch(&cp, "bgppeer/gr", MERGE, to_false).await?;
    assert_refused(&patched, GRACEFUL, GRACEFUL_IMMUTABLE);
    let reapplied = kubectl_apply(&cp, &peer(false, "30s")).await?;
    assert_refused(&reapplied, GRACEFUL, GRACEFUL_IMMUTABLE);
    let remove = r#"[{"op":"remove","path":"/spec/enableGracefulRestart"}]"#;
    let removed = kubectl_patch(&cp, "bgppeer/gr", JSON_PATCH, remove).await?;
    assert_refused(&removed, GRACEFUL, GRACEFUL_IMMUTABLE);
    let stored = Api::<BGPPeer>::namespaced(client.clone(), NAMESPACE)
        .get("gr")
        .await?;
    assert!(stored.spec.enable_graceful_restart);
    assert_eq!(stored.spec.hold_time.as_deref(), Some("30s"));

    // ServiceL2Status.status: set once by the speaker, then node, serviceName and
    // serviceNamespace stay; the interfaces may change.
    apply(&cp, &manifest("ServiceL2Status", "l2", "{}")).await?;
    let set = r#"{"status":{"node":"node-a","serviceName":"web","serviceNamespace":"default"}}"#;
    kubectl_patch(&cp, "servicel2status/l2", STATUS_MERGE, set)
        .await?
        .into_stdout()?;
    let interfaces = r#"{"status":{"interfaces":[{"name":"eth1"}]}}"#;
    kubectl_patch(&cp, "servicel2status/l2", STATUS_MERGE, interfaces)
        .await?
        .into_stdout()?;
    for (field, patch, message) in [
        (
            "status.node",
            r#"{"status":{"node":"node-b"}}"#,
            "node is immutable",
        ),
        (
            "status.serviceName",
            r#"{"status":{"serviceName":"db"}}"#,
            "serviceName is immutable",
        ),
        (
            "status.serviceNamespace",
            r#"{"status":{"serviceNamespace":"prod"}}"#,
            "serviceNamespace is immutable",
        ),
    ] {
        let out = kubectl_patch(&cp, "servicel2status/l2", STATUS_MERGE, patch).await?;
        assert_refused(&out, field, message);
    }

    // The typed client (as the speaker writes) is refused the same way.
    let l2 = Api::<ServiceL2Status>::namespaced(client.clone(), NAMESPACE);
    let to_b = Patch::Merge(json!({ "status": { "node": "node-b" } }));
    match l2.patch_status("l2", &PatchParams::default(), &to_b).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains("status.node"), "{status:?}");
            assert!(status.message.contains("node is immutable"), "{status:?}");
        }
        other => panic!("changing status.node through the typed client: {other:?}"),
    }
    let status = l2.get("l2").await?.status.context("the status was lost")?;
    assert_eq!(status.node.as_deref(), Some("node-a"));
    let eth1 = InterfaceName {
        name: "eth1".to_owned(),
    };
    assert_eq!(status.interfaces, vec![eth1]);

    // ServiceBGPStatus has the same rules.
    let bgp = Api::<ServiceBGPStatus>::namespaced(client, NAMESPACE);
    let fresh = in_namespace(ServiceBGPStatus::new("bgp", ServiceBGPStatusSpec {}));
    bgp.create(&PostParams::default(), &fresh).await?;
    let set = Patch::Merge(json!({ "status": { "node": "node-a", "peers": ["router"] } }));
    bgp.patch_status("bgp", &PatchParams::default(), &set)
        .await?;
    let to_b = r#"{"status":{"node":"node-b"}}"#;
    let refused = kubectl_patch(&cp, "servicebgpstatus/bgp", STATUS_MERGE, to_b).await?;
    assert_refused(&refused, "status.node", "node is immutable");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rules that first slipped through (found by this suite): sub-millisecond connectTime fractions,
// and immutable status fields that could be removed and then set again.

#[tokio::test]
async fn sub_second_connect_times_and_removed_immutable_fields_are_refused() -> anyhow::Result<()> {
    let cp = Arc::new(control_plane_with_crds().await?);

    // "Time between connection attempts (Go duration, whole seconds, 1s-65535s)": the rule
    // checks `getMilliseconds() % 1000`, so fractions below a millisecond pass.
    #[rustfmt::skip]
    let cases = [
        no(PEER, "connectTime 1s500us", "{connectTime: 1s500us}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 1000001us", "{connectTime: 1000001us}", "spec.connectTime", CONNECT_TIME),
        no(PEER, "connectTime 1.0001s", "{connectTime: 1.0001s}", "spec.connectTime", CONNECT_TIME),
    ];
    let mut problems = run_cases(&cp, &cases).await?;

    // "The node that answers ARP/NDP for the Service's IPs. Immutable.": `self == oldSelf` on an
    // optional field is not evaluated when the new object lacks the field, so the node can be
    // removed, and another one set afterwards.
    apply(&cp, &manifest("ServiceL2Status", "l2", "{}")).await?;
    let set = r#"{"status":{"node":"node-a","serviceName":"web","serviceNamespace":"default"}}"#;
    kubectl_patch(&cp, "servicel2status/l2", STATUS_MERGE, set)
        .await?
        .into_stdout()?;
    let remove = r#"[{"op":"remove","path":"/status/node"}]"#;
    let removed = kubectl_patch(&cp, "servicel2status/l2", STATUS_JSON_PATCH, remove).await?;
    if removed.success() || !removed.stderr.contains("immutable") {
        problems.push(format!(
            "removing the immutable status.node of a ServiceL2Status: exit {}, stdout {:?}, \
             stderr {:?}",
            removed.status, removed.stdout, removed.stderr
        ));
    }
    check_reports(&problems, cases.len() + 1)
}
