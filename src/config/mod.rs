//! GLOBAL.INI + `PORTSHARE_*` environment → one frozen, validated [`Settings`].
//!
//! The file is read with the `config` crate (INI format). Every key is checked
//! here, once: an unknown key or a bad value stops start-up with a message that
//! names the file, the section, the key and what is allowed — never a silent
//! default for a typo.
//!
//! A folder because loading has three separate stages, each its own file:
//! `file` finds and decodes GLOBAL.INI into raw sections, `env` merges the
//! `PORTSHARE_*` overrides into them, and `sections` checks them and builds
//! the [`Settings`] (one function per section). `settings` holds the types;
//! everything public is re-exported here, so `crate::config::X` is the path.

mod env;
mod file;
mod sections;
mod settings;
mod site;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use file::{locate, stamp, FileStamp, DEFAULT_FILE_NAME};
pub use settings::{
    AcmeChallenges, AcmeSettings, AppConfig, AuthConfig, CgiRunner, CgiSettings, ConfigError,
    Limits, Origin, RedirectRule, SessionTickets, Settings, SiteConfig, SiteOptions, DEFAULT_SITE,
    LETS_ENCRYPT_DIRECTORY,
};

/// A yes/no value as GLOBAL.INI spells it, in any case: `yes`, `true`,
/// `on`, `1` or `no`, `false`, `off`, `0`; `None` for anything else.
/// (Every yes/no key of every section reads it here.)
fn yes_no(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A section's `prefix=`: one or more URL prefixes, comma- or
/// space-separated, each checked; `example` completes the message when the
/// key is missing or empty. (`[app:]`, `[site:]` and `[auth:]` share it.)
fn prefix_list(
    file: &str,
    section: &str,
    keys: &BTreeMap<String, String>,
    example: &str,
) -> Result<Vec<crate::urlprefix::UrlPrefix>, ConfigError> {
    let err = |message: String| ConfigError::Key {
        file: file.into(),
        section: section.into(),
        key: "prefix".into(),
        message,
    };
    let prefixes = keys
        .get("prefix")
        .map_or("", String::as_str)
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(|p| {
            crate::urlprefix::UrlPrefix::parse(p)
                .map_err(|e| err(format!("'{p}' is not a valid URL prefix: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if prefixes.is_empty() {
        return Err(err(format!(
            "is missing; give one or more URL prefixes{example}"
        )));
    }
    Ok(prefixes)
}

/// Raw `section → key → value` view of the file plus overrides.
type Sections = BTreeMap<String, BTreeMap<String, String>>;

impl Settings {
    /// Loads the file found by [`locate`], applies `PORTSHARE_*` overrides
    /// from the process environment and validates everything.
    pub fn load(explicit: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Settings::load_with_env(locate(explicit).as_deref(), &env)
    }

    /// As [`Settings::load`], with the file and environment given (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        // Before reading: a change after this is seen by `watch_config`.
        let stamp = file.and_then(file::stamp);
        let (origin, base_dir, mut sections) = match file {
            Some(path) => {
                let sections = file::read_ini(path)?;
                let dir = path
                    .parent()
                    .map(Path::to_path_buf)
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or_else(|| PathBuf::from("."));
                (Origin::File(path.to_path_buf()), dir, sections)
            }
            None => (Origin::Defaults, PathBuf::from("."), Sections::new()),
        };
        env::apply_env(&mut sections, env)?;
        let mut settings = Settings::from_sections(origin, &base_dir, &sections)?;
        settings.file_stamp = stamp;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn yes_no_reads_every_spelling_in_any_case() {
        for v in ["yes", " YES ", "True", "on", "1"] {
            assert_eq!(super::yes_no(v), Some(true), "{v}");
        }
        for v in ["no", "False", "OFF", "0 "] {
            assert_eq!(super::yes_no(v), Some(false), "{v}");
        }
        for v in ["", "maybe", "shared", "2", "y"] {
            assert_eq!(super::yes_no(v), None, "{v}");
        }
    }
}
