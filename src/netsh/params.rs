//! netsh `name=value` parameters and the value checks shared by the commands.

use std::net::SocketAddr;

use super::Failure;
use crate::store::{is_braced_guid, BindingKey};

/// Parsed `name=value` parameters; names lowercased, values as given.
#[derive(Debug, Default)]
pub(crate) struct Params {
    items: Vec<(String, String)>,
}

impl Params {
    /// Parses `args`; every name must be in `allowed` and appear once.
    pub fn parse(
        args: &[String],
        allowed: &[&str],
        usage: &'static str,
    ) -> Result<Params, Failure> {
        let mut items: Vec<(String, String)> = Vec::new();
        for arg in args {
            let Some((name, value)) = arg.split_once('=') else {
                return Err(Failure::param(
                    format!("'{arg}' is not of the form name=value."),
                    usage,
                ));
            };
            let name = name.trim().to_ascii_lowercase();
            if !allowed.contains(&name.as_str()) {
                return Err(Failure::param(
                    format!("'{name}' is not a parameter of this command."),
                    usage,
                ));
            }
            if items.iter().any(|(n, _)| *n == name) {
                return Err(Failure::param(format!("'{name}' is given twice."), usage));
            }
            items.push((name, value.trim().to_owned()));
        }
        Ok(Params { items })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The one binding key among `ipport`, `hostnameport`, `ccs`.
    pub fn binding_key(&self, usage: &'static str) -> Result<Option<BindingKey>, Failure> {
        let given: Vec<(&str, &str)> = self
            .iter()
            .filter(|(n, _)| matches!(*n, "ipport" | "hostnameport" | "ccs"))
            .collect();
        match given.as_slice() {
            [] => Ok(None),
            [(name, value)] => parse_binding_key(name, value)
                .map(Some)
                .map_err(|e| Failure::param(e, usage)),
            _ => Err(Failure::param(
                "give only one of ipport=, hostnameport= and ccs=.",
                usage,
            )),
        }
    }
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|p| *p != 0)
}

/// `ipport=IP:PORT`, `hostnameport=HOST:PORT` or `ccs=PORT`.
pub(crate) fn parse_binding_key(name: &str, value: &str) -> Result<BindingKey, String> {
    match name {
        // `ipport=:443` (no address) is every IPv4 address, as netsh takes
        // it: PowerShell scripts build the value from an empty `$ip`
        // ("Configure HTTPS with HTTP.sys": `ipport=$($ip):$port`).
        "ipport" if value.starts_with(':') && !value[1..].contains(':') => {
            match parse_port(&value[1..]) {
                Some(port) => Ok(BindingKey::IpPort(SocketAddr::from(([0, 0, 0, 0], port)))),
                None => Err(format!(
                    "ipport '{value}' is not IP:PORT (examples: 0.0.0.0:443, [::]:443, 10.0.0.1:443)."
                )),
            }
        }
        "ipport" => match value.parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => Ok(BindingKey::IpPort(a)),
            _ => Err(format!(
                "ipport '{value}' is not IP:PORT (examples: 0.0.0.0:443, [::]:443, 10.0.0.1:443)."
            )),
        },
        "hostnameport" => {
            let bad = || {
                format!(
                    "hostnameport '{value}' is not HOSTNAME:PORT (example: www.example.com:443)."
                )
            };
            let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
            let port = parse_port(port).ok_or_else(bad)?;
            let host = host.to_ascii_lowercase();
            let host_ok = !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
                });
            if !host_ok {
                return Err(if host.is_ascii() {
                    bad()
                } else {
                    format!("hostnameport '{value}': write an international name in its xn-- (punycode) form.")
                });
            }
            Ok(BindingKey::HostnamePort(host, port))
        }
        _ => parse_port(value)
            .map(BindingKey::Ccs)
            .ok_or_else(|| format!("ccs '{value}' is not a port number (1-65535).")),
    }
}

/// Normalises a thumbprint: drops spaces and the invisible marks the Windows
/// certificate dialog copies along, lowercases, and checks 40 hex digits.
pub(crate) fn parse_certhash(value: &str) -> Result<String, String> {
    let hash: String = value
        .chars()
        .filter(|c| {
            !c.is_whitespace() && !matches!(c, '\u{200b}' | '\u{200e}' | '\u{200f}' | '\u{feff}')
        })
        .collect::<String>()
        .to_ascii_lowercase();
    if hash.len() == 40 && hash.bytes().all(|c| c.is_ascii_hexdigit()) {
        Ok(hash)
    } else {
        Err(format!(
            "certhash '{value}' is not a SHA-1 thumbprint (40 hex digits); 'portshare cert list' shows them."
        ))
    }
}

/// `{GUID}`; returned lowercase (netsh prints application IDs lowercase).
pub(crate) fn parse_appid(value: &str) -> Result<String, String> {
    if is_braced_guid(value) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(format!(
            "appid '{value}' is not a GUID in braces, e.g. appid={{00112233-4455-6677-8899-aabbccddeeff}} (in PowerShell quote it: appid='{{...}}')."
        ))
    }
}

/// `enable` / `disable`.
pub(crate) fn parse_enable(name: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "enable" => Ok(true),
        "disable" => Ok(false),
        _ => Err(format!(
            "{name} must be 'enable' or 'disable', not '{value}'."
        )),
    }
}

/// `yes` / `no`.
pub(crate) fn parse_yes_no(name: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("{name} must be 'yes' or 'no', not '{value}'.")),
    }
}

/// A decimal number in `min..=max`.
pub(crate) fn parse_number(name: &str, value: &str, min: u32, max: u32) -> Result<u32, String> {
    value
        .parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v) && value.bytes().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| format!("{name} must be a whole number from {min} to {max}, not '{value}'."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_keys() {
        assert_eq!(
            parse_binding_key("ipport", "[::]:443").unwrap().to_string(),
            "[::]:443"
        );
        assert!(parse_binding_key("ipport", "0.0.0.0").is_err());
        assert_eq!(
            parse_binding_key("ipport", ":443").unwrap().to_string(),
            "0.0.0.0:443"
        );
        assert!(parse_binding_key("ipport", ":").is_err());
        assert!(parse_binding_key("ipport", "::443").is_err());
        assert!(parse_binding_key("ipport", "0.0.0.0:0").is_err());
        assert!(parse_binding_key("ipport", "0.0.0.0:70000").is_err());
        assert!(parse_binding_key("ipport", "site.test:443").is_err());
        assert_eq!(
            parse_binding_key("hostnameport", "Site.Test:8443").unwrap(),
            BindingKey::HostnamePort("site.test".into(), 8443)
        );
        assert!(parse_binding_key("hostnameport", "site.test").is_err());
        assert!(parse_binding_key("hostnameport", ":443").is_err());
        assert!(parse_binding_key("hostnameport", "a..b:443").is_err());
        assert!(parse_binding_key("hostnameport", "bücher.test:443")
            .unwrap_err()
            .contains("punycode"));
        assert_eq!(
            parse_binding_key("ccs", "443").unwrap(),
            BindingKey::Ccs(443)
        );
        assert!(parse_binding_key("ccs", "+443").is_err());
        assert!(parse_binding_key("ccs", "0").is_err());
    }

    #[test]
    fn certhash_normalised() {
        assert_eq!(
            parse_certhash("\u{200e}46 AA B7 40 25 4A 12 C9 14 61 42 06 7F 5C F6 9E 58 31 54 AD")
                .unwrap(),
            "46aab740254a12c9146142067f5cf69e583154ad"
        );
        assert!(parse_certhash("46aab740").is_err());
        assert!(parse_certhash(&"g".repeat(40)).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("value", "65535", 1, 65535), Ok(65535));
        assert!(parse_number("value", "0", 1, 65535).is_err());
        assert!(parse_number("value", "+5", 1, 65535).is_err());
        assert!(parse_number("value", "65536", 1, 65535).is_err());
    }
}
