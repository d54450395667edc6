//! Registration cost does not grow with the number of prefixes already
//! registered (issue 19, point 8): registering or unregistering one prefix
//! in a table of 50,000 allocates about as much as in a table of 1,000.
//!
//! Measured in bytes allocated by the registering thread, not in time: a
//! count is exact and repeatable on a loaded machine, where a timing is not.
//! A registry that copied or rebuilt its table per registration allocated
//! megabytes here at 50,000 (it did until the table became persistent).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use std::sync::{Arc, OnceLock};

use portshare::config::{Settings, SiteConfig, DEFAULT_SITE};
use portshare::registry::{Handler, NewRegistration, Owner, Registry};
use portshare::site::Site;
use portshare::urlprefix::UrlPrefix;

/// Counts the bytes each thread allocates (the test harness runs tests on
/// several threads; only the measuring thread's own work counts).
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + new_size));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated_by(f: impl FnOnce()) -> usize {
    let before = ALLOCATED.with(Cell::get);
    f();
    ALLOCATED.with(Cell::get) - before
}

fn prefix(s: &str) -> UrlPrefix {
    UrlPrefix::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// One site every registration points at (what it serves does not matter
/// here, only what registering costs).
fn site() -> Handler {
    static SITE: OnceLock<(tempfile::TempDir, Arc<Site>)> = OnceLock::new();
    let (_, site) = SITE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = Settings::load_with_env(None, &[]).expect("default settings");
        let config = SiteConfig {
            name: DEFAULT_SITE.to_owned(),
            prefixes: Vec::new(),
            public_dir: dir.path().to_owned(),
            options: Default::default(),
        };
        let site = Site::new(&config, &settings).expect("a site");
        (dir, Arc::new(site))
    });
    Handler::Site(site.clone())
}

fn owner(i: usize) -> Owner {
    Owner::Process {
        pid: Some(i as u32),
        user: None,
    }
}

/// A registry holding `n` one-prefix registrations, spread over hosts and
/// paths as a busy server's would be.
fn registry_with(n: usize) -> Registry {
    let registry = Registry::new();
    let batch = (0..n)
        .map(|i| NewRegistration {
            owner: owner(i),
            queue: format!("q{i}"),
            prefixes: vec![prefix(&format!(
                "http://site{}.test:8080/app{}/",
                i % 500,
                i / 500
            ))],
            handler: site(),
        })
        .collect();
    if let Err(e) = registry.register_all(batch) {
        panic!("filling the registry: {e}");
    }
    registry
}

/// Bytes allocated to register one more prefix and to unregister it again.
fn cost_of_one(registry: &Registry) -> (usize, usize) {
    let p = prefix("http://new.test:8080/one/more/");
    let mut id = None;
    let register = allocated_by(|| {
        id = registry
            .register(owner(0), "new".to_owned(), vec![p], site())
            .ok();
    });
    let Some(id) = id else {
        panic!("the new prefix was refused");
    };
    let unregister = allocated_by(|| assert!(registry.unregister(id)));
    (register, unregister)
}

#[test]
fn registering_one_prefix_costs_the_same_in_a_large_table() {
    let small = registry_with(1_000);
    let large = registry_with(50_000);
    assert_eq!(large.snapshot().prefixes.len(), 50_000);
    let (reg_small, unreg_small) = cost_of_one(&small);
    let (reg_large, unreg_large) = cost_of_one(&large);
    eprintln!("register: {reg_small} / {reg_large} bytes, unregister: {unreg_small} / {unreg_large} bytes (1,000 / 50,000 prefixes)");
    // A persistent table copies O(log n) nodes: a little more at 50x the
    // size, far from 50x (a rebuild allocated ~50x, megabytes).
    assert!(
        reg_large <= reg_small * 2 + 4096,
        "register: {reg_small} bytes at 1,000 prefixes, {reg_large} at 50,000"
    );
    assert!(
        unreg_large <= unreg_small * 2 + 4096,
        "unregister: {unreg_small} bytes at 1,000 prefixes, {unreg_large} at 50,000"
    );
    // The table is what it should be afterwards.
    assert_eq!(large.snapshot().prefixes.len(), 50_000);
}

#[test]
fn a_refused_registration_leaves_the_table_as_it_was() {
    let registry = registry_with(100);
    let taken = prefix("http://site3.test:8080/app0/");
    let before = registry.snapshot().prefixes.len();
    let refused = registry.register(
        owner(1),
        "late".to_owned(),
        vec![prefix("http://fresh.test:8080/"), taken],
        site(),
    );
    assert!(refused.is_err(), "a taken prefix must be refused");
    let table = registry.snapshot();
    assert_eq!(table.prefixes.len(), before);
    assert!(!table.prefixes.contains(&prefix("http://fresh.test:8080/")));
}
