//! Codec micro-benchmarks: 10,000 host routes (what 10,000 LoadBalancer IPs become) packed by
//! the `UpdateBuilder` into UPDATEs and encoded, and those bytes decoded back, for IPv4 /32s
//! and IPv6 /128s. The session does exactly this when it comes up with a full route set.
//!
//! Run: `cargo bench -p ferrolb-bgp --bench updates` (figures go to docs/benchmarks.md).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ferrolb_bgp::packet::{
    AsPath, Community, Families, Message, MpNextHop, Origin, PathAttributes, SessionContext,
    UpdateBuilder,
};
use ipnet::IpNet;

const ROUTES: u32 = 10_000;

fn ctx() -> SessionContext {
    SessionContext {
        four_octet_as: true,
        families: Families::BOTH,
    }
}

fn builder() -> UpdateBuilder {
    UpdateBuilder::new(&ctx())
        .attributes(PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([4_200_000_001])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            communities: vec![Community::new(65000, 100)],
            ..PathAttributes::default()
        })
        .ipv6_next_hop(MpNextHop {
            global: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1)),
            link_local: None,
        })
}

/// 10,000 /32s from 198.18.0.0/15, or 10,000 /128s from 2001:db8:100::/56.
fn host_routes(family: &str) -> Vec<IpNet> {
    (0..ROUTES)
        .map(|i| match family {
            "ipv4" => IpNet::from(IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i))),
            _ => IpNet::from(IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0x100,
                0,
                0,
                0,
                (i >> 16) as u16,
                i as u16,
            ))),
        })
        .collect()
}

fn encode(routes: &[IpNet]) -> Vec<Vec<u8>> {
    let ctx = ctx();
    builder()
        .announce(routes.iter().copied())
        .expect("the attributes fit")
        .into_iter()
        .map(|u| Message::Update(u).encode(&ctx).expect("encodes"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("10000 host routes");
    group.sample_size(30);
    for family in ["ipv4", "ipv6"] {
        let routes = host_routes(family);
        let messages = encode(&routes);
        println!(
            "{family}: {} UPDATEs, {} octets",
            messages.len(),
            messages.iter().map(Vec::len).sum::<usize>()
        );
        group.bench_with_input(BenchmarkId::new("build+encode", family), &routes, |b, r| {
            b.iter(|| encode(black_box(r)))
        });
        group.bench_with_input(BenchmarkId::new("decode", family), &messages, |b, m| {
            let ctx = ctx();
            b.iter(|| {
                let routes: usize = m
                    .iter()
                    .map(|bytes| match Message::decode(black_box(bytes), &ctx) {
                        Ok(Message::Update(u)) => u.announced().count(),
                        other => panic!("not an UPDATE: {other:?}"),
                    })
                    .sum();
                assert_eq!(routes, ROUTES as usize);
                routes
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
