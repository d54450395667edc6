//! `portshare user add|delete|list --file FILE NAME`: the htpasswd files of
//! `[auth:NAME]` sections, without Apache's `htpasswd`.
//!
//! New passwords are bcrypt (`$2y$`, as `htpasswd -B` writes). The file is
//! replaced atomically (a running server, which re-reads it when it
//! changes, never sees half a file) with mode 0600: it holds password
//! hashes. Other lines — comments, other users, even refused formats — stay
//! as they were, so a file can be moved off weak hashes one user at a time.

use std::io::{BufRead as _, ErrorKind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::auth::htpasswd::{self, Line, Users};

/// `portshare user …`.
#[derive(Debug, Clone, Subcommand)]
pub enum UserAction {
    /// Add a user, or set a new password for one (asked twice, without echo)
    Add {
        /// The htpasswd file (created if missing, mode 0600)
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The user name (no ':', space or control character)
        name: String,
        /// Read the password from the first line of standard input instead
        #[arg(long)]
        password_stdin: bool,
        /// bcrypt cost (work factor), 4 to 31
        #[arg(long, default_value_t = htpasswd::DEFAULT_COST,
              value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
    /// Delete a user
    Delete {
        /// The htpasswd file
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The user name
        name: String,
    },
    /// List the users and the format of each one's password
    List {
        /// The htpasswd file
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

/// Why a `portshare user` command failed.
#[derive(Debug, thiserror::Error)]
enum UserError {
    #[error("cannot read {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", file.display())]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "'{0}' is not a valid user name: no ':', space or control character, at most 255 bytes"
    )]
    BadName(String),
    #[error("cannot read the password: {0}")]
    Password(std::io::Error),
    #[error("the password is empty")]
    EmptyPassword,
    #[error("the two passwords differ; nothing was changed")]
    Mismatch,
    #[error("no user '{name}' in {}", file.display())]
    NoSuchUser { name: String, file: PathBuf },
    #[error("hashing the password failed: {0}")]
    Hash(#[from] bcrypt::BcryptError),
}

/// `portshare user …`.
pub fn user(action: &UserAction) -> ExitCode {
    let result = match action {
        UserAction::Add {
            file,
            name,
            password_stdin,
            cost,
        } => add(file, name, *password_stdin, *cost),
        UserAction::Delete { file, name } => delete(file, name),
        UserAction::List { file } => list(file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portshare: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The file's lines; a missing file has none.
fn read_lines(file: &Path, missing_ok: bool) -> Result<Vec<Line>, UserError> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(htpasswd::lines(&text)),
        Err(e) if missing_ok && e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(UserError::Read {
            file: file.to_owned(),
            source,
        }),
    }
}

fn write_lines(file: &Path, lines: &[Line]) -> Result<(), UserError> {
    let mut text = String::new();
    for line in lines {
        match line {
            Line::User { name, hash } => {
                text.push_str(name);
                text.push(':');
                text.push_str(hash);
            }
            Line::Other(other) => text.push_str(other),
        }
        text.push('\n');
    }
    crate::atomic_file::write_atomic(file, text.as_bytes(), true).map_err(|source| {
        UserError::Write {
            file: file.to_owned(),
            source,
        }
    })?;
    // What a server would say about the file now (other users' lines).
    if let Err(e) = Users::parse(file, &text) {
        eprintln!("portshare: warning: the server will not accept this file yet: {e}");
    }
    Ok(())
}

fn read_password(name: &str, from_stdin: bool) -> Result<String, UserError> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(UserError::Password)?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        let first = rpassword::prompt_password(format!("New password for {name}: "))
            .map_err(UserError::Password)?;
        let again = rpassword::prompt_password("The same again: ").map_err(UserError::Password)?;
        if first != again {
            return Err(UserError::Mismatch);
        }
        first
    };
    if password.is_empty() {
        return Err(UserError::EmptyPassword);
    }
    Ok(password)
}

fn add(file: &Path, name: &str, from_stdin: bool, cost: u32) -> Result<(), UserError> {
    if !htpasswd::valid_name(name) {
        return Err(UserError::BadName(name.to_owned()));
    }
    // Read first: a file that cannot be read is reported before the prompt.
    let mut lines = read_lines(file, true)?;
    let password = read_password(name, from_stdin)?;
    let hash = htpasswd::hash_password(&password, cost)?;
    let mut replaced = false;
    for line in &mut lines {
        if let Line::User { name: n, hash: h } = line {
            if n == name {
                *h = hash.clone();
                replaced = true;
            }
        }
    }
    if !replaced {
        lines.push(Line::User {
            name: name.to_owned(),
            hash,
        });
    }
    write_lines(file, &lines)?;
    println!(
        "{} user '{name}' in {}",
        if replaced {
            "Changed the password of"
        } else {
            "Added"
        },
        file.display()
    );
    Ok(())
}

fn delete(file: &Path, name: &str) -> Result<(), UserError> {
    let mut lines = read_lines(file, false)?;
    let before = lines.len();
    lines.retain(|l| !matches!(l, Line::User { name: n, .. } if n == name));
    if lines.len() == before {
        return Err(UserError::NoSuchUser {
            name: name.to_owned(),
            file: file.to_owned(),
        });
    }
    write_lines(file, &lines)?;
    println!("Deleted user '{name}' from {}", file.display());
    Ok(())
}

fn list(file: &Path) -> Result<(), UserError> {
    for line in read_lines(file, false)? {
        if let Line::User { name, hash } = line {
            println!("{name}\t{}", format_name(&hash));
        }
    }
    Ok(())
}

/// What `list` says about a hash.
fn format_name(hash: &str) -> &'static str {
    if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
        "bcrypt"
    } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
        "SHA-crypt"
    } else if hash.starts_with("$argon2") {
        "Argon2"
    } else {
        "refused (set a new password with 'portshare user add')"
    }
}
