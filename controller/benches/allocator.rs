//! Allocator micro-benchmarks: the cost of one allocate + release while the allocator already
//! holds N allocations, in an IPv4 /16 and an IPv6 /64 pool. Flat figures across N (and across
//! pool sizes) are the point: allocation is O(log n) and never enumerates the pool.
//!
//! Run: `cargo bench -p ferrolb-controller --bench allocator` (figures go to docs/benchmarks.md).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ferrolb_config::{Family, IpRange, Labels, Pool, PoolName};
use ferrolb_controller::allocator::{Allocator, ServiceKey, ServiceRequest};

fn pool(entry: &str) -> Pool {
    Pool {
        name: PoolName::from("bench"),
        ranges: vec![IpRange::parse_entry(entry).expect("valid")],
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
        labels: Labels::new(),
    }
}

fn request(i: usize, family: Family) -> ServiceRequest {
    let mut r = ServiceRequest::new(ServiceKey::new("bench", format!("svc-{i}")));
    r.families = vec![family];
    r
}

fn filled(entry: &str, family: Family, n: usize) -> Allocator {
    let mut a = Allocator::new([pool(entry)]);
    for i in 0..n {
        a.allocate(&request(i, family)).expect("room in the pool");
    }
    a
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocate+release");
    group.sample_size(30);
    let cases: [(&str, &str, Family, &[usize]); 2] = [
        ("v4 /16", "198.18.0.0/16", Family::V4, &[10, 10_000, 60_000]),
        (
            "v6 /64",
            "2001:db8::/64",
            Family::V6,
            &[10, 10_000, 1_000_000],
        ),
    ];
    for (label, entry, family, sizes) in cases {
        for &n in sizes {
            let mut a = filled(entry, family, n);
            // Release every other allocation so the pool is fragmented, as a real one is.
            for i in (0..n).step_by(2) {
                a.release(&request(i, family).key);
            }
            let probe = request(usize::MAX, family);
            group.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
                b.iter(|| {
                    let got = a.allocate(black_box(&probe)).expect("room");
                    a.release(&probe.key);
                    black_box(got)
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
