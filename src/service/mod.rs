//! `portshare service install|uninstall|start|stop`: the server as a Windows
//! service ([`windows`], via the `windows-service` crate). The service
//! control manager starts `portshare.exe service run --config FILE`, which
//! runs the same server as `serve` and stops it gracefully (as Ctrl-C) on the
//! service-control stop.
//!
//! On other platforms the subcommand exists but only says that services are
//! Windows-only (use systemd, launchd or a container there).

use std::path::Path;
use std::process::ExitCode;

use portshare::cli::ServiceAction;

#[cfg(windows)]
mod windows;

/// `portshare service …`.
pub fn command(config: Option<&Path>, action: ServiceAction) -> ExitCode {
    #[cfg(windows)]
    {
        windows::command(config, action)
    }
    #[cfg(not(windows))]
    {
        let _ = (config, action);
        eprintln!(
            "portshare: 'portshare service' is Windows-only; here run 'portshare serve' under systemd, launchd or a container"
        );
        // As the management commands report a command they do not offer.
        portshare::cli::exit_code(portshare::winerror::ERROR_NOT_SUPPORTED as i32)
    }
}
