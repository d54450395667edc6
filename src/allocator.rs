//! The binary's allocator: mimalloc, with its arenas committed as they are
//! used.
//!
//! mimalloc keeps allocations of different sizes apart and hands freed pages
//! back to the system: after a burst of connections (each with 16 KiB of
//! hyper buffers) goes idle, the memory is returned instead of staying
//! fragmented in glibc's heap. It is also faster for many small allocations.
//!
//! But its default on Linux, `arena_eager_commit=2` (commit a whole arena
//! at once where the kernel overcommits), leaves what it frees resident: an
//! idle server held 17–25 MiB of anonymous memory instead of 3.4–3.7 MiB
//! (bench/RESULTS.md, (h)). The first allocation reserves the first arena,
//! and the Rust runtime allocates before `main`, so the option is set from
//! an ELF constructor. It is only a default: `MIMALLOC_ARENA_EAGER_COMMIT`
//! in the environment still decides. Elsewhere (Windows) mimalloc never
//! commits eagerly, so there is nothing to set.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(target_os = "linux")]
mod linux {
    /// `mi_option_arena_eager_commit` in mimalloc.h (v2 and v3), which
    /// libmimalloc-sys does not name.
    pub(super) const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

    /// Run by the loader with the other constructors, before `main` and
    /// before anything is allocated through Rust.
    #[used]
    #[link_section = ".init_array"]
    static SET_OPTIONS: extern "C" fn() = set_options;

    extern "C" fn set_options() {
        // SAFETY: sets an option's default, before any other thread
        // exists; it allocates nothing.
        unsafe { libmimalloc_sys::mi_option_set_default(ARENA_EAGER_COMMIT, 0) };
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The constructor ran before the test harness: the option reads 0
    /// unless the environment chose otherwise.
    #[test]
    fn arenas_are_not_committed_eagerly() {
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some() {
            return; // the environment decides, as documented
        }
        // SAFETY: reads a process-wide option.
        let value = unsafe { libmimalloc_sys::mi_option_get(super::linux::ARENA_EAGER_COMMIT) };
        assert_eq!(value, 0);
    }
}
