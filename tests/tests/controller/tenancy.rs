//! Tenants: a namespace that may only create Services cannot reach past a pool's namespace
//! fence, join another namespace's shared IP, or take another namespace's IP away.

use crate::support::*;

/// Pool `prod-only` (fenced to namespace `prod`) and `open` (anyone), both auto-assigning.
async fn fenced_pools(c: &Cluster) -> anyhow::Result<()> {
    let pool = |name: &str, range: &str, fence: Option<&str>| {
        let mut spec = json!({"addresses": [range], "autoAssign": true});
        if let Some(ns) = fence {
            spec["serviceAllocation"] = json!({"namespaces": [ns]});
        }
        json!({
            "apiVersion": ferrolb_api::API_VERSION,
            "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        })
    };
    for body in [
        pool("prod-only", "192.0.2.200-192.0.2.219", Some("prod")),
        pool("open", "192.0.2.220-192.0.2.239", None),
        pool(
            "prod-only-v6",
            "2001:db8:0:1::200-2001:db8:0:1::20f",
            Some("prod"),
        ),
    ] {
        let name = body["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        c.pools()
            .patch(
                &name,
                &PatchParams::apply("ferrolb-tests").force(),
                &Patch::Apply(&body),
            )
            .await
            .with_context(|| format!("applying IPAddressPool {name}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn a_tenant_gets_no_ip_of_a_pool_fenced_to_another_namespace_by_any_annotation_or_field()
-> anyhow::Result<()> {
    let c = Cluster::start().await?;
    create_namespace(&c.cp, "prod").await?;
    create_namespace(&c.cp, "evil").await?;
    fenced_pools(&c).await?;
    let _controller = c.controller("ctl")?;

    // The fenced namespace's Services: one plain, one sharing under key "shared".
    c.create_in(lb("web", &[80]).in_namespace("prod")).await?;
    c.create_in(
        lb("dns", &[53])
            .in_namespace("prod")
            .annotate("ferrolb.io/allow-shared-ip", "shared"),
    )
    .await?;
    let prod_ips = eventually("prod's Services have IPs", WAIT, || async {
        let services = c.services_in("prod").await?;
        let held: BTreeMap<String, Vec<IpAddr>> = services
            .iter()
            .map(|s| (s.metadata.name.clone().unwrap_or_default(), ingress(s)))
            .collect();
        ensure!(held.values().all(|ips| ips.len() == 1), "{held:?}");
        Ok(held)
    })
    .await?;
    for ips in prod_ips.values() {
        assert!(
            in_range(ips[0], "192.0.2.200", "192.0.2.219"),
            "{prod_ips:?}"
        );
    }
    let web_ip = prod_ips["web"][0].to_string();
    let dns_ip = prod_ips["dns"][0].to_string();

    // Every way a tenant in `evil` could ask for the fenced pool's addresses.
    let attempts = vec![
        lb("named-pool-and-ip", &[80])
            .annotate("ferrolb.io/address-pool", "prod-only")
            .annotate("ferrolb.io/loadBalancerIPs", "192.0.2.210"),
        lb("named-pool-and-held-ip", &[81])
            .annotate("ferrolb.io/address-pool", "prod-only")
            .annotate("ferrolb.io/loadBalancerIPs", &web_ip),
        lb("annotation-ip", &[80]).annotate("ferrolb.io/loadBalancerIPs", "192.0.2.211"),
        lb("metallb-aliases", &[80])
            .annotate("metallb.io/address-pool", "prod-only")
            .annotate("metallb.universe.tf/loadBalancerIPs", "192.0.2.212"),
        lb("spec-field", &[80]).load_balancer_ip("192.0.2.213"),
        lb("spec-field-and-pool", &[80])
            .load_balancer_ip("192.0.2.214")
            .annotate("ferrolb.io/address-pool", "prod-only"),
        lb("named-pool", &[80]).annotate("ferrolb.io/address-pool", "prod-only"),
        lb("join-shared-ip", &[54])
            .annotate("ferrolb.io/allow-shared-ip", "shared")
            .annotate("ferrolb.io/loadBalancerIPs", &dns_ip),
        lb("join-shared-key", &[55]).annotate("ferrolb.io/allow-shared-ip", "shared"),
        lb("v6-named-pool", &[80])
            .families(&["IPv6"])
            .annotate("ferrolb.io/address-pool", "prod-only-v6"),
        lb("v6-requested", &[80])
            .families(&["IPv6"])
            .annotate("ferrolb.io/loadBalancerIPs", "2001:db8:0:1::201"),
        lb("dual-named-pool", &[80])
            .families(&["IPv4", "IPv6"])
            .require_dual_stack()
            .annotate("ferrolb.io/address-pool", "prod-only"),
    ];
    let count = attempts.len();
    for svc in attempts {
        c.create_in(svc.in_namespace("evil")).await?;
    }
    // Every attempt has been decided on (a condition), none holds a fenced address.
    let decided = eventually("every tenant Service has a condition", WAIT, || async {
        let services = c.services_in("evil").await?;
        ensure!(services.len() == count, "{} Services", services.len());
        let undecided: Vec<String> = services
            .iter()
            .filter(|s| our_condition(s).is_none())
            .map(describe)
            .collect();
        ensure!(undecided.is_empty(), "{undecided:?}");
        Ok(services)
    })
    .await?;
    for svc in &decided {
        for addr in ingress(svc) {
            assert!(
                in_range(addr, "192.0.2.220", "192.0.2.239"),
                "a tenant got a fenced address: {}",
                describe(svc)
            );
        }
    }
    // The automatic sharer got an IP of its own from the open pool, not prod's shared one.
    let joined = decided
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("join-shared-key"))
        .context("join-shared-key")?;
    assert_eq!(ingress(joined).len(), 1, "{}", describe(joined));

    // And prod kept every IP it had.
    for (name, ips) in &prod_ips {
        let svc = Api::<Service>::namespaced(c.client.clone(), "prod")
            .get(name)
            .await?;
        assert_eq!(&ingress(&svc), ips, "{}", describe(&svc));
    }
    Ok(())
}
