//! Lookup cost of the URL-prefix routing table with 1 and 10,000 registrations.
//!
//! Run with `cargo run --release --example router_bench`. Prints one line per
//! case: `case  registrations  ns/lookup`. Plain `Instant` timing over ~1M
//! lookups per case; requests rotate over a precomputed set so the branch
//! predictor and caches do not see the same request every time.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use portshare::urlprefix::{normalize_path, Lookup, PrefixTable, Scheme, UrlPrefix};

const ITERS: usize = 1_000_000;

struct Req {
    host: String,
    ip: IpAddr,
    key: String,
}

fn prefix(s: &str) -> UrlPrefix {
    match UrlPrefix::parse(s) {
        Ok(p) => p,
        Err(e) => panic!("{s}: {e}"),
    }
}

fn key(raw: &str) -> String {
    match normalize_path(raw) {
        Ok(k) => k.into_owned(),
        Err(e) => panic!("{raw}: {e}"),
    }
}

/// Runs `ITERS` lookups rotating over `reqs`; returns (ns/lookup, matched count).
fn bench(table: &PrefixTable<u32>, reqs: &[Req]) -> (f64, usize) {
    let mut matched = 0usize;
    let start = Instant::now();
    for i in 0..ITERS {
        let r = &reqs[i % reqs.len()];
        let res = table.lookup(
            black_box(Scheme::Http),
            black_box(80),
            black_box(Some(r.host.as_str())),
            black_box(r.ip),
            black_box(r.key.as_str()),
        );
        if let Lookup::Matched { value, .. } = black_box(res) {
            matched += *value as usize & 1 | 1;
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / ITERS as f64;
    (ns, matched)
}

fn report(name: &str, table: &PrefixTable<u32>, reqs: &[Req]) {
    // Warm up, then measure.
    let _ = bench(table, reqs);
    let (ns, matched) = bench(table, reqs);
    println!(
        "{name:<48} {:>6} prefixes  {ns:>7.1} ns/lookup  ({}% matched)",
        table.len(),
        matched * 100 / ITERS
    );
}

fn main() {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);

    // --- 1 registration ---------------------------------------------------
    let mut one = PrefixTable::new();
    if let Err(e) = one.insert(prefix("http://+:80/"), 0) {
        panic!("{e}");
    }
    let reqs_one: Vec<Req> = (0..64)
        .map(|i| Req {
            host: format!("host{i}.example.com"),
            ip: lo,
            key: key(&format!("/api/v1/users/{i}/profile")),
        })
        .collect();
    report("1 prefix (+:80/), 5-segment path", &one, &reqs_one);

    // --- 10,000 registrations -----------------------------------------------
    // 8,000 explicit-host prefixes (2,000 hosts x 4 paths at depths 1–3),
    // 1,000 IP-bound, 990 strong-wildcard paths, 10 weak-wildcard paths.
    let mut big = PrefixTable::new();
    let mut n = 0u32;
    let mut add = |table: &mut PrefixTable<u32>, s: String| {
        if let Err(e) = table.insert(prefix(&s), n) {
            panic!("{e}");
        }
        n += 1;
    };
    for h in 0..2000 {
        for path in ["/", "/app/", "/app/v1/", "/static/img/"] {
            add(&mut big, format!("http://site{h}.example.com:80{path}"));
        }
    }
    for i in 0..1000u32 {
        let ip = Ipv4Addr::from(0x0a00_0000 + i);
        add(&mut big, format!("http://{ip}:80/ipapp/"));
    }
    for i in 0..990 {
        add(&mut big, format!("http://+:80/svc{i}/"));
    }
    for i in 0..10 {
        add(&mut big, format!("http://*:80/w{i}/"));
    }
    add(&mut big, "http://*:80/".to_string());
    assert!(big.len() >= 10_000);

    let explicit: Vec<Req> = (0..1024)
        .map(|i| Req {
            host: format!("Site{}.Example.com:80", (i * 7) % 2000),
            ip: lo,
            key: key(&format!("/App/v1/users/{i}/profile")),
        })
        .collect();
    report("10k: explicit host, 5-segment path", &big, &explicit);

    let strong: Vec<Req> = (0..1024)
        .map(|i| Req {
            host: format!("site{}.example.com", i % 2000),
            ip: lo,
            key: key(&format!("/svc{}/x/y", i % 990)),
        })
        .collect();
    report("10k: strong wildcard hit", &big, &strong);

    let ipbound: Vec<Req> = (0..1024u32)
        .map(|i| Req {
            host: "unknown.example.org".to_string(),
            ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i % 1000)),
            key: key("/ipapp/a/b/c"),
        })
        .collect();
    report("10k: IP-bound hit (unknown host)", &big, &ipbound);

    let weak: Vec<Req> = (0..1024)
        .map(|i| Req {
            host: format!("nobody{i}.example.org"),
            ip: lo,
            key: key(&format!("/no/such/{i}/thing/here/at/all")),
        })
        .collect();
    report("10k: falls through to weak wildcard, 8 segs", &big, &weak);

    let deep_path = format!("/{}", "segment/".repeat(30));
    let deep: Vec<Req> = (0..64)
        .map(|i| Req {
            host: format!("site{i}.example.com"),
            ip: lo,
            key: key(&deep_path),
        })
        .collect();
    report("10k: explicit host, 30-segment path", &big, &deep);

    // Cost of normalising a typical request path, for comparison.
    let raw: Vec<String> = (0..1024)
        .map(|i| format!("/App/V1/users/{i}/Profile"))
        .collect();
    let start = Instant::now();
    for i in 0..ITERS {
        let _ = black_box(normalize_path(black_box(&raw[i % raw.len()])));
    }
    let ns = start.elapsed().as_nanos() as f64 / ITERS as f64;
    println!(
        "{:<48} {:>6}           {ns:>7.1} ns/call",
        "normalize_path, 5-segment path", "-"
    );
}
