//! `PORTSHARE_*` environment overrides, merged into the raw sections before
//! they are checked, so an override is validated exactly like a key in the
//! file (the container case: no GLOBAL.INI, everything from the environment).
//! A value that fails the check is then blamed on its variable
//! ([`ConfigError::blame_env`]), not on the file.

use super::file::SYSTEM_CONFIG_DIR_VAR;
use super::sections::PARAM_KEYS;
use super::{ConfigError, Sections};

/// Variables that choose where the configuration is, where `cert trust` writes
/// (a test trust folder), or how long the server's own certificates last (for
/// tests), not a setting in it.
const NOT_SETTINGS: &[&str] = &[
    "PORTSHARE_CONFIG",
    SYSTEM_CONFIG_DIR_VAR,
    // certs::trust's TRUST_DIR_ENV and TRUST_BUNDLE_ENV, spelt out: config sits below
    // certs (tests/local_ca.rs fails if the names drift apart).
    "PORTSHARE_TRUST_DIR",
    "PORTSHARE_TRUST_BUNDLE",
    // tls::devcerts::LIFETIME_ENV (tests/dev_certs.rs fails if the names drift apart).
    "PORTSHARE_DEV_CERT_LIFETIME",
];

/// The `(section, key)` a `PORTSHARE_*` variable sets: `None` for other
/// variables, `Some(Err(()))` for a `PORTSHARE_` name that is no setting.
fn target(var: &str) -> Option<Result<(String, String), ()>> {
    let rest = var.strip_prefix("PORTSHARE_")?;
    if NOT_SETTINGS.contains(&var) {
        return None;
    }
    let rest = rest.to_ascii_lowercase();
    Some(match rest.split_once("__") {
        Some((s, k)) => Ok((s.to_owned(), k.to_owned())),
        None if PARAM_KEYS.contains(&rest.as_str()) => Ok(("param".to_owned(), rest)),
        None => Err(()),
    })
}

/// `PORTSHARE_HTTP_PORT=9000` overrides `[param] http_port`;
/// `PORTSHARE_HTTP__MAXFIELDLENGTH=…` overrides `[http] MaxFieldLength`
/// (double underscore between section and key).
pub(super) fn apply_env(
    sections: &mut Sections,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    for (var, value) in env {
        let (section, key) = match target(var) {
            None => continue,
            Some(Ok(t)) => t,
            Some(Err(())) => {
                return Err(ConfigError::Env {
                    var: var.clone(),
                    message: format!(
                        "not a known setting; [param] keys are PORTSHARE_{}, other sections use PORTSHARE_SECTION__KEY",
                        PARAM_KEYS
                            .iter()
                            .map(|k| k.to_ascii_uppercase())
                            .collect::<Vec<_>>()
                            .join(", PORTSHARE_")
                    ),
                })
            }
        };
        sections
            .entry(section)
            .or_default()
            .insert(key, value.clone());
    }
    Ok(())
}

impl ConfigError {
    /// The same error naming the `PORTSHARE_*` variable in `env` that set the
    /// rejected key (an override wins over the file, so the bad value is the
    /// variable's), or a section only a variable made; unchanged otherwise.
    pub fn blame_env(self, env: &[(String, String)]) -> ConfigError {
        let set_by = |wanted: &dyn Fn(&str, &str) -> bool| {
            env.iter().find_map(|(var, _)| match target(var) {
                Some(Ok((s, k))) if wanted(&s, &k) => Some(var.clone()),
                _ => None,
            })
        };
        match self {
            ConfigError::Key {
                file,
                section,
                key,
                message,
            } => match set_by(&|s, k| s == section && k == key) {
                Some(var) => ConfigError::Env { var, message },
                None => ConfigError::Key {
                    file,
                    section,
                    key,
                    message,
                },
            },
            // `sections` words it "unknown section [NAME]; allowed: …".
            ConfigError::File { file, message } => {
                let var = message
                    .strip_prefix("unknown section [")
                    .and_then(|m| m.split_once(']'))
                    .and_then(|(name, _)| set_by(&|s, _| s == name));
                match var {
                    Some(var) => ConfigError::Env { var, message },
                    None => ConfigError::File { file, message },
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn errors_name_the_variable_that_set_the_value() {
        let e = env(&[("PORTSHARE_HTTP_PORT", "abc"), ("PORTSHARE_HTTP__FOO", "1")]);
        let key = |section: &str, key: &str| ConfigError::Key {
            file: "GLOBAL.INI".into(),
            section: section.into(),
            key: key.into(),
            message: "bad".into(),
        };
        let blamed = key("param", "http_port").blame_env(&e).to_string();
        assert_eq!(blamed, "environment variable PORTSHARE_HTTP_PORT: bad");
        let blamed = key("http", "foo").blame_env(&e).to_string();
        assert_eq!(blamed, "environment variable PORTSHARE_HTTP__FOO: bad");
        // A key the environment did not set stays the file's.
        let kept = key("param", "https_port").blame_env(&e).to_string();
        assert_eq!(kept, "GLOBAL.INI [param] https_port: bad");
        let section = ConfigError::File {
            file: "GLOBAL.INI".into(),
            message: "unknown section [frob]; allowed: [param]".into(),
        };
        let e = env(&[("PORTSHARE_FROB__X", "1")]);
        assert!(section
            .blame_env(&e)
            .to_string()
            .starts_with("environment variable PORTSHARE_FROB__X: unknown section [frob]"));
    }

    #[test]
    fn location_variables_are_not_settings() {
        let mut sections = Sections::new();
        let e = env(&[
            ("PORTSHARE_CONFIG", "/x/GLOBAL.INI"),
            (SYSTEM_CONFIG_DIR_VAR, "/x"),
        ]);
        assert!(apply_env(&mut sections, &e).is_ok());
        assert!(sections.is_empty());
    }
}
