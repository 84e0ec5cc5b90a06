//! The CRDs under `manifests/crds/` in a real kube-apiserver: they install, their descriptions
//! and short names reach kubectl users, the samples apply and round-trip through the typed
//! client, and every validation rule refuses what it should (with the field and a message a user
//! can act on) while accepting the valid values next to each boundary.

mod cases;
mod typed;

use cases::{apply, manifest};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};
use typed::*;

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
