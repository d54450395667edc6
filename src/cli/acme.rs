//! `portshare acme status|renew`: both ask the running server, which alone
//! knows the schedule and the last result, and alone may order (it answers
//! the challenges). Without a server, `status` still prints what the store
//! knows.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use crate::control::client::{self, ClientError};
use crate::winerror::ERROR_ACCESS_DENIED;

use super::{exit_code, register};

/// `portshare acme …`.
#[derive(Debug, Clone, Subcommand)]
pub enum AcmeAction {
    /// Per name: thumbprint, not-after, next renewal, last result and error
    Status,
    /// Renew now through the running server (every ACME name when none is given)
    Renew {
        /// Host names, as `acme status` lists them
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
}

/// Handlers the control channel calls for `portshare acme …`; none when
/// the server orders no certificates.
pub(super) fn hooks(running: &crate::app::Running) -> crate::control::ControlHooks {
    // Asked at each command: a reload may start or stop ACME.
    const NONE: &str =
        "this server does not order certificates (GLOBAL.INI has no usable [acme] section)";
    let (status, renew) = (running.acme.clone(), running.acme.clone());
    crate::control::ControlHooks {
        acme_status: Some(std::sync::Arc::new(move || {
            let h = status.handle();
            Box::pin(async move { h.map(|h| h.report()).ok_or_else(|| NONE.to_owned()) })
        })),
        acme_renew: Some(std::sync::Arc::new(move |names| {
            let h = renew.handle();
            Box::pin(async move {
                match h {
                    Some(h) => h.renew(names).await,
                    None => Err(NONE.to_owned()),
                }
            })
        })),
        ..crate::control::ControlHooks::default()
    }
}

/// `portshare acme status|renew`.
pub fn acme(config: Option<&Path>, action: &AcmeAction) -> ExitCode {
    let (settings, path, rt) = match super::server_session(config) {
        Ok(session) => session,
        Err(code) => return code,
    };
    let answer = rt.block_on(async {
        match action {
            AcmeAction::Status => client::acme_status(&path).await,
            AcmeAction::Renew { names } => client::acme_renew(&path, names.clone()).await,
        }
    });
    let what = match action {
        AcmeAction::Status => "status",
        AcmeAction::Renew { .. } => "renew",
    };
    match answer {
        Ok(text) => super::print_answer(&text),
        Err(e @ ClientError::NotRunning(_)) => {
            eprintln!("portshare: {e}");
            match action {
                AcmeAction::Status => {
                    eprintln!(
                        "portshare: what the store in {} knows (the schedule and last results are the server's):",
                        settings.cert_dir.display()
                    );
                    match crate::acme::status::from_store(&settings.cert_dir) {
                        Ok(text) => print!("{text}"),
                        Err(e) => eprintln!("portshare: {e}"),
                    }
                }
                AcmeAction::Renew { .. } => eprintln!(
                    "portshare: start the server first ('portshare --config {}'); it orders and answers the challenges",
                    settings.origin
                ),
            }
            ExitCode::FAILURE
        }
        // Not allowed: netsh's layout and exit code, as for a registration.
        Err(ClientError::Refused { code, message }) if code == ERROR_ACCESS_DENIED => {
            print!("{}", register::error_text(code, &message));
            exit_code(code as i32)
        }
        Err(e @ ClientError::Denied { .. }) => {
            print!("{}", register::error_text(e.code(), &e.to_string()));
            exit_code(e.code() as i32)
        }
        Err(ClientError::Refused { message, .. }) => {
            eprintln!("portshare: acme {what}: {message}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("portshare: acme {what} failed: {e}");
            ExitCode::FAILURE
        }
    }
}
