//! Issue 18: no module cycle. Runs `scripts/module-graph.py`, which builds
//! the crate's module graph (a module being a file, or a folder's `mod.rs`
//! with its children) and exits 1 when modules at the same level depend on
//! each other in a cycle. Needs `python3` (standard library only).

use std::process::Command;

#[test]
fn no_module_cycles() {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = format!("{root}/scripts/module-graph.py");
    let out = Command::new("python3")
        .arg(&script)
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("could not run `python3 {script}`: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the module graph has cycles (or the check failed): `python3 scripts/module-graph.py` \
         exited with {}. Break each cycle listed below (the lines give file:line of every \
         reference that closes it), then run the script again.\n\n{stdout}{stderr}",
        out.status
    );
}
