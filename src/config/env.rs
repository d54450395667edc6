//! `PORTSHARE_*` environment overrides, merged into the raw sections before
//! they are checked, so an override is validated exactly like a key in the
//! file (the container case: no GLOBAL.INI, everything from the environment).

use super::sections::PARAM_KEYS;
use super::{ConfigError, Sections};

/// `PORTSHARE_HTTP_PORT=9000` overrides `[param] http_port`;
/// `PORTSHARE_HTTP__MAXFIELDLENGTH=…` overrides `[http] MaxFieldLength`
/// (double underscore between section and key).
pub(super) fn apply_env(
    sections: &mut Sections,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("PORTSHARE_") else {
            continue;
        };
        if rest == "CONFIG" {
            continue;
        }
        let rest = rest.to_ascii_lowercase();
        let (section, key) = match rest.split_once("__") {
            Some((s, k)) => (s.to_owned(), k.to_owned()),
            None if PARAM_KEYS.contains(&rest.as_str()) => ("param".to_owned(), rest),
            None => {
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
