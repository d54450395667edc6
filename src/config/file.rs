//! Finding GLOBAL.INI and reading it into raw sections: the file search
//! order, the text encodings Windows editors save (UTF-8 with or without BOM,
//! UTF-16 with BOM) and the INI parse. Nothing here knows what a key means;
//! that is `sections`' job.

use std::collections::BTreeMap;
use std::env;
use std::path::{Path, PathBuf};

use super::{ConfigError, Sections};

/// Name of the configuration file looked for in the working directory and
/// beside the executable (cFos keeps it beside the program).
pub const DEFAULT_FILE_NAME: &str = "GLOBAL.INI";

/// Finds the configuration file: `--config`, else `PORTSHARE_CONFIG`, else
/// `./GLOBAL.INI`, else `GLOBAL.INI` beside the executable, else none.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = env::var_os("PORTSHARE_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let cwd = PathBuf::from(DEFAULT_FILE_NAME);
    if cwd.is_file() {
        return Some(cwd);
    }
    let beside_exe = env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(DEFAULT_FILE_NAME)))?;
    beside_exe.is_file().then_some(beside_exe)
}

/// Reads the INI file with the `config` crate into lowercase sections/keys.
pub(super) fn read_ini(path: &Path) -> Result<Sections, ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConfigError::File {
        file: file.clone(),
        message: format!("cannot read the configuration file: {e}"),
    })?;
    let text = decode_text(&bytes).map_err(|message| ConfigError::File {
        file: file.clone(),
        message,
    })?;
    // The INI parser treats `\` as an escape (`\t` → tab) and a trailing `\`
    // as a line continuation; Windows paths (`C:\sites\top\`) need it literal.
    let text = text.replace('\\', "\\\\");
    // `::config` is the `config` crate, not this module.
    let cfg = ::config::Config::builder()
        .add_source(::config::File::from_str(&text, ::config::FileFormat::Ini))
        .build()
        .map_err(|e| ConfigError::File {
            file: file.clone(),
            message: format!("not a valid INI file: {e}"),
        })?;
    let raw: BTreeMap<String, ::config::Value> =
        cfg.try_deserialize().map_err(|e| ConfigError::File {
            file: file.clone(),
            message: format!("not a valid INI file: {e}"),
        })?;
    let mut sections = Sections::new();
    for (name, value) in raw {
        let table = value.into_table().map_err(|_| ConfigError::File {
            file: file.clone(),
            message: format!(
                "'{name}' stands outside any section; put keys under [param] (or [http], [cgi], [app:NAME])"
            ),
        })?;
        let keys = sections.entry(name.to_ascii_lowercase()).or_default();
        for (key, v) in table {
            let text = v.into_string().map_err(|e| ConfigError::Key {
                file: file.clone(),
                section: name.clone(),
                key: key.clone(),
                message: format!("not a plain value: {e}"),
            })?;
            keys.insert(key.to_ascii_lowercase(), text);
        }
    }
    Ok(sections)
}

/// UTF-8 (with or without BOM; CRLF fine) or UTF-16 with BOM, as Notepad saves.
fn decode_text(bytes: &[u8]) -> Result<String, String> {
    let utf16 = |le: bool| -> Result<String, String> {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units)
            .map_err(|_| "the file says UTF-16 but is not valid UTF-16".into())
    };
    match bytes {
        [0xFF, 0xFE, ..] => utf16(true),
        [0xFE, 0xFF, ..] => utf16(false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => std::str::from_utf8(rest)
            .map(str::to_owned)
            .map_err(|e| format!("not valid UTF-8 ({e}); save the file as UTF-8")),
        _ => std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|e| format!("not valid UTF-8 ({e}); save the file as UTF-8")),
    }
}
