//! Finding GLOBAL.INI and reading it into raw sections: the file search
//! order, the text encodings Windows editors save (UTF-8 with or without BOM,
//! UTF-16 with BOM) and the INI parse. Nothing here knows what a key means;
//! that is `sections`' job.

use std::collections::BTreeMap;
use std::env;
use std::path::{Path, PathBuf};

use super::{ConfigError, Sections, Settings};

/// Name of the configuration file looked for in the working directory and
/// beside the executable (cFos keeps it beside the program).
pub const DEFAULT_FILE_NAME: &str = "GLOBAL.INI";

/// Replaces the system folder of the search (for packagers who install
/// elsewhere, and for tests, which must not touch `/etc`).
pub const SYSTEM_CONFIG_DIR_VAR: &str = "PORTSHARE_SYSTEM_CONFIG_DIR";

/// Finds the configuration file: `--config`, else `PORTSHARE_CONFIG`, else
/// the first GLOBAL.INI of [`search_dirs`], else none (built-in defaults).
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = env::var_os("PORTSHARE_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    Settings::config_found_by_search()
}

/// The folders searched for GLOBAL.INI when neither `--config` nor
/// `PORTSHARE_CONFIG` names a file, in order: the working directory; the
/// folder of the path the program was invoked by (a `netsh` symlink's own
/// folder); the folder of the executable itself (links resolved); the
/// system folder ([`system_config_dir`]). Administrative commands run from
/// any folder thus reach the same state as the server, as netsh does.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(".")];
    let mut push = |d: PathBuf| {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    };
    if let Some(d) = env::args_os()
        .next()
        .and_then(|a| invoked_dir(Path::new(&a)))
    {
        push(d);
    }
    if let Some(d) = env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        push(d);
    }
    if let Some(d) = system_config_dir() {
        push(d);
    }
    dirs
}

impl Settings {
    /// [`search_dirs`], for callers outside `config` (which re-exports only
    /// [`locate`] from this file).
    pub fn config_search_dirs() -> Vec<PathBuf> {
        search_dirs()
    }

    /// The GLOBAL.INI the search finds without `--config` and
    /// `PORTSHARE_CONFIG`: what a command typed without them would use.
    pub fn config_found_by_search() -> Option<PathBuf> {
        search_dirs()
            .into_iter()
            .map(|d| d.join(DEFAULT_FILE_NAME))
            .find(|p| p.is_file())
    }
}

/// The folder of the path the program was started by (`argv[0]`), without
/// resolving links: `/usr/local/bin` for `/usr/local/bin/netsh` → portshare.
/// A bare name (found through `PATH` by the shell) is looked up in `PATH`.
fn invoked_dir(argv0: &Path) -> Option<PathBuf> {
    if argv0.components().count() > 1 {
        return argv0
            .parent()
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .map(Path::to_path_buf);
    }
    let name = argv0.file_name()?;
    let path = env::var_os("PATH")?;
    env::split_paths(&path).find(|dir| {
        let candidate = dir.join(name);
        // On Windows the shell adds `.exe`.
        candidate.is_file()
            || candidate
                .with_extension(env::consts::EXE_EXTENSION)
                .is_file()
    })
}

/// The system folder, the last place searched: `$PORTSHARE_SYSTEM_CONFIG_DIR`
/// when set, else [`default_system_config_dir`].
pub fn system_config_dir() -> Option<PathBuf> {
    match env::var_os(SYSTEM_CONFIG_DIR_VAR).filter(|d| !d.is_empty()) {
        Some(d) => Some(PathBuf::from(d)),
        None => default_system_config_dir(),
    }
}

/// `/etc/portshare`.
#[cfg(not(windows))]
pub fn default_system_config_dir() -> Option<PathBuf> {
    Some(PathBuf::from("/etc/portshare"))
}

/// `%ProgramData%\portshare` (machine-wide application data, where services
/// keep their configuration).
#[cfg(windows)]
pub fn default_system_config_dir() -> Option<PathBuf> {
    env::var_os("ProgramData")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("portshare"))
}

/// What identifies a file's content without reading it: size,
/// modification time and (on Unix) inode — a Kubernetes ConfigMap swaps a
/// symlink, an editor renames a new file into place.
pub fn stamp(file: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(file).ok()?;
    #[cfg(unix)]
    let id = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let id = 0;
    Some(FileStamp {
        len: meta.len(),
        modified: meta.modified().ok()?,
        id,
    })
}

/// See [`stamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    modified: std::time::SystemTime,
    id: u64,
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
    let text = number_repeated_keys(&text);
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

/// `value` relative to `base` (the configuration file's folder), made absolute
/// once here whether or not it exists yet: a folder created later (the log
/// folder on the first start) must not stay relative, as CGI scripts run in
/// another folder.
pub(super) fn resolve(base: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    std::path::absolute(&joined).unwrap_or(joined)
}

/// Keys that may appear on several lines of one section (site options):
/// [`read_ini`] numbers them (`redirect.0001`, `redirect.0002`…) in file
/// order, as the INI parser keeps only a repeated key's last value.
pub(super) const REPEATED_KEYS: &[&str] = &["redirect", "header"];

/// Gives each line of a key that may repeat (`redirect=`, `header=`) a
/// key of its own, numbered in file order within its section
/// (`redirect.0001`, `redirect.0002`…): the INI parser keeps only the last
/// value of a repeated key. Everything else passes through untouched.
fn number_repeated_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            counts.clear();
        } else if let Some((key, rest)) = trimmed.split_once('=') {
            let key = key.trim();
            if let Some(name) = REPEATED_KEYS.iter().find(|k| key.eq_ignore_ascii_case(k)) {
                let n = counts.entry(name).or_insert(0);
                *n += 1;
                out.push_str(&format!("{name}.{n:04}={rest}"));
                continue;
            }
        }
        out.push_str(line);
    }
    out
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
