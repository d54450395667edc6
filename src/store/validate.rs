//! What a hand edit of `sslcert.json` could break: checked on every load and
//! before every write, so neither a bad file nor a bad change goes unnoticed.

use super::schema::{BindingKey, StoreData, STORE_VERSION};

impl StoreData {
    /// Checks what a hand edit could break. Returns the first problem found.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != STORE_VERSION {
            return Err(format!(
                "unsupported version {} (this portshare reads version {STORE_VERSION})",
                self.version
            ));
        }
        for (i, b) in self.sslcert.iter().enumerate() {
            let what = format!("sslcert entry {} ({}={})", i + 1, b.key.param_name(), b.key);
            let hash_ok = b.certhash.len() == 40
                && b.certhash
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
            let ccs_without_hash = matches!(b.key, BindingKey::Ccs(_)) && b.certhash.is_empty();
            if !hash_ok && !ccs_without_hash {
                return Err(format!(
                    "{what}: certhash {:?} is not 40 lowercase hex digits",
                    b.certhash
                ));
            }
            if !is_braced_guid(&b.appid) {
                return Err(format!(
                    "{what}: appid {:?} is not a GUID in braces",
                    b.appid
                ));
            }
            if b.key.port() == 0 {
                return Err(format!("{what}: port 0 is not allowed"));
            }
            if let BindingKey::HostnamePort(h, _) = &b.key {
                if h.is_empty() {
                    return Err(format!("{what}: empty host name"));
                }
            }
            if self.sslcert[..i].iter().any(|o| o.key == b.key) {
                return Err(format!("{what}: duplicate binding"));
            }
        }
        for (i, r) in self.urlacl.iter().enumerate() {
            if r.url.is_empty() {
                return Err(format!("urlacl entry {}: empty url", i + 1));
            }
            if r.user.is_empty() && r.sddl.is_empty() {
                return Err(format!(
                    "urlacl entry {} ({}): neither user nor sddl",
                    i + 1,
                    r.url
                ));
            }
            if self.urlacl[..i]
                .iter()
                .any(|o| o.url.eq_ignore_ascii_case(&r.url))
            {
                return Err(format!("urlacl entry {} ({}): duplicate url", i + 1, r.url));
            }
        }
        for (name, v) in [
            ("idle_connection", self.timeouts.idle_connection),
            ("header_wait", self.timeouts.header_wait),
        ] {
            if let Some(v) = v {
                if v == 0 || v > 65535 {
                    return Err(format!("timeouts.{name}: {v} is outside 1..=65535 seconds"));
                }
            }
        }
        for (i, ip) in self.iplisten.iter().enumerate() {
            if self.iplisten[..i].contains(ip) {
                return Err(format!(
                    "iplisten entry {} ({ip}): duplicate address",
                    i + 1
                ));
            }
        }
        Ok(())
    }
}

/// `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`, hex digits of either case.
pub fn is_braced_guid(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
        return false;
    };
    let groups: Vec<&str> = inner.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    groups.len() == lens.len()
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.bytes().all(|c| c.is_ascii_hexdigit()))
}
