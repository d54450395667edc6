//! Command-line interface: `serve` (the default) and the management verbs.
//! Each verb is a thin call into the library; output texts live with the
//! library code that owns them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "portshare",
    version,
    about = "A personal HTTP/HTTPS server with HTTP.sys's port sharing, URL prefixes and netsh commands",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// GLOBAL.INI to use (else $PORTSHARE_CONFIG, ./GLOBAL.INI, GLOBAL.INI beside the program)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default command)
    Serve,
    /// netsh-compatible HTTP configuration: add|update|delete|show sslcert|urlacl|timeout, show servicestate
    Http {
        /// netsh arguments, e.g. `add sslcert ipport=0.0.0.0:443 certhash=… appid={…}`
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
}

/// Parses the process arguments. Invoked under the name `netsh` (a symlink
/// in a container), the binary behaves as `portshare`.
pub fn parse() -> Cli {
    Cli::parse()
}
