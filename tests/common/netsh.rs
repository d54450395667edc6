//! The binary invoked as `netsh`: a symlink named `netsh` in a test
//! server's folder (`portshare` behaves as netsh under that name).

use std::path::{Path, PathBuf};
use std::process::Output;

use super::{TestServer, BIN};

/// A test server's configuration (started or not) with a `netsh` symlink
/// beside it.
pub struct Netsh {
    pub server: TestServer,
    pub link: PathBuf,
}

impl Netsh {
    /// A fresh configuration, not started.
    pub fn new() -> Netsh {
        Netsh::with(TestServer::prepare("", |_| {}))
    }

    pub fn with(server: TestServer) -> Netsh {
        let link = server.dir.path().join("netsh");
        std::os::unix::fs::symlink(BIN, &link).expect("symlink netsh");
        Netsh { server, link }
    }

    pub fn dir(&self) -> &Path {
        self.server.dir.path()
    }

    /// `netsh ARGS…` with `input` on standard input.
    pub fn run(&self, args: &[&str], input: &str) -> Output {
        super::run_as_netsh(&self.link, &self.server.config, args, input)
    }

    /// `portshare cert import` of a certificate in tests/fixtures/certs.
    pub fn import_fixture_cert(&self, name: &str) {
        let pem = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/certs")
            .join(name);
        let o = super::run_cli(
            &self.server.config,
            &["cert", "import", &pem.to_string_lossy()],
        );
        assert!(
            o.status.success(),
            "import {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
