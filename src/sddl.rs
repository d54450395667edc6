//! The SDDL strings of URL reservations (`http add urlacl sddl=…`): parsed
//! once, evaluated in Windows' order.
//!
//! Windows' access check walks a DACL's entries in order, and the first one
//! that names the caller and the right asked for decides: a deny entry
//! refuses, an allow entry grants (with one right asked for, there is
//! nothing to accumulate). So `D:(D;;GX;;;alice)(A;;GX;;;WD)` keeps alice
//! out while letting everyone else in, and the same two entries the other
//! way round let alice in. A reservation's right to register is `listen`:
//! GENERIC_EXECUTE (`GX`), or GENERIC_ALL (`GA`).
//!
//! Only what portshare can evaluate is accepted; the rest is refused with
//! the reason rather than half-understood: allow and deny entries only (no
//! object, audit or conditional entries), and trustees that mean something
//! on this machine — `WD`/`S-1-1-0` (Everyone), `AU`/`S-1-5-11`
//! (Authenticated Users), `BU`/`S-1-5-32-545` (Users), `BA`/`S-1-5-32-544`
//! (Administrators: root), `SY`/`S-1-5-18` (the system: root), or a local
//! account name (portshare's stand-in for a user's SID, which Unix has not).

/// GENERIC_ALL and GENERIC_EXECUTE, as an access mask.
const GENERIC_ALL: u32 = 0x1000_0000;
const GENERIC_EXECUTE: u32 = 0x2000_0000;
const LISTEN: u32 = GENERIC_ALL | GENERIC_EXECUTE;

/// A parsed SDDL string: its DACL's entries, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sddl {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    allow: bool,
    rights: u32,
    trustee: Trustee,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Trustee {
    /// Every local user.
    Everyone,
    /// root (Administrators, the system).
    Root,
    /// A local account, by name.
    User(String),
}

/// Who asks: a user name, and whether it is root.
pub struct Caller<'a> {
    pub name: &'a str,
    pub root: bool,
}

impl Sddl {
    /// Parses `text`; the error says what portshare cannot evaluate.
    pub fn parse(text: &str) -> Result<Sddl, String> {
        let text = text.trim();
        let dacl = text
            .find("D:")
            .map(|i| &text[i + 2..])
            .ok_or_else(|| format!("'{text}' has no DACL ('D:' followed by entries)"))?;
        // DACL flags (P, AI, AR…) come before the first entry; a SACL
        // (`S:`) after the DACL is not evaluated.
        let dacl = dacl.split("S:").next().unwrap_or(dacl);
        let start = dacl
            .find('(')
            .ok_or_else(|| format!("'{text}' has no entries in its DACL"))?;
        let body = dacl[start..].trim_end();
        if !body.ends_with(')') {
            return Err(format!("the last entry of '{text}' is not closed with ')'"));
        }
        let mut entries = Vec::new();
        for part in body.split_terminator(')') {
            let ace = part.trim().strip_prefix('(').ok_or_else(|| {
                format!("'{part})' is not an entry (type;flags;rights;;;trustee)")
            })?;
            entries.push(Entry::parse(ace)?);
        }
        Ok(Sddl { entries })
    }

    /// Whether `caller` may register (listen), in Windows' order.
    pub fn grants_listen(&self, caller: &Caller<'_>) -> bool {
        self.entries
            .iter()
            .find(|e| e.rights & LISTEN != 0 && e.trustee.names(caller))
            .is_some_and(|e| e.allow)
    }
}

impl Entry {
    fn parse(ace: &str) -> Result<Entry, String> {
        let fields: Vec<&str> = ace.split(';').map(str::trim).collect();
        let [kind, _flags, rights, object, inherited, sid] = fields.as_slice() else {
            return Err(format!(
                "'({ace})' does not have the six fields type;flags;rights;object;inherited;trustee"
            ));
        };
        let allow = match kind.to_ascii_uppercase().as_str() {
            "A" => true,
            "D" => false,
            other => {
                return Err(format!(
                    "entry type '{other}' in '({ace})' cannot be evaluated here; use A (allow) or D (deny)"
                ))
            }
        };
        if !object.is_empty() || !inherited.is_empty() {
            return Err(format!(
                "object entries such as '({ace})' cannot be evaluated here"
            ));
        }
        Ok(Entry {
            allow,
            rights: parse_rights(rights).ok_or_else(|| {
                format!(
                    "rights '{rights}' in '({ace})' are not SDDL rights (GX, GA, GR, GW, … or 0x…)"
                )
            })?,
            trustee: Trustee::parse(sid)?,
        })
    }
}

impl Trustee {
    fn parse(sid: &str) -> Result<Trustee, String> {
        let upper = sid.to_ascii_uppercase();
        Ok(match upper.as_str() {
            "WD" | "S-1-1-0" | "AU" | "S-1-5-11" | "BU" | "S-1-5-32-545" => Trustee::Everyone,
            "BA" | "S-1-5-32-544" | "SY" | "S-1-5-18" => Trustee::Root,
            _ if upper.starts_with("S-1-") => {
                return Err(format!(
                    "the SID {sid} names no account portshare knows; use user=NAME, or the account's name in place of the SID"
                ))
            }
            _ if sid.len() == 2 && sid.bytes().all(|b| b.is_ascii_uppercase()) => {
                return Err(format!(
                    "the SID alias {sid} cannot be evaluated here; use WD, AU, BU, BA, SY or an account name"
                ))
            }
            "" => return Err("an entry has no trustee".into()),
            _ => Trustee::User(sid.to_owned()),
        })
    }

    fn names(&self, caller: &Caller<'_>) -> bool {
        match self {
            Trustee::Everyone => true,
            Trustee::Root => caller.root,
            Trustee::User(name) => {
                let bare = name.rsplit('\\').next().unwrap_or(name);
                name.eq_ignore_ascii_case(caller.name) || bare.eq_ignore_ascii_case(caller.name)
            }
        }
    }
}

/// An access mask from SDDL rights: two-letter codes or a number.
fn parse_rights(rights: &str) -> Option<u32> {
    if let Some(hex) = rights
        .strip_prefix("0x")
        .or_else(|| rights.strip_prefix("0X"))
    {
        return u32::from_str_radix(hex, 16).ok();
    }
    if rights.is_empty() || !rights.len().is_multiple_of(2) || !rights.is_ascii() {
        return None;
    }
    let mut mask = 0;
    for code in rights.as_bytes().chunks(2) {
        mask |= match code.to_ascii_uppercase().as_slice() {
            b"GA" => GENERIC_ALL,
            b"GX" => GENERIC_EXECUTE,
            b"GW" => 0x4000_0000,
            b"GR" => 0x8000_0000,
            // Standard and object rights: known, never `listen`.
            b"RC" | b"SD" | b"WD" | b"WO" | b"RP" | b"WP" | b"CC" | b"DC" | b"LC" | b"SW"
            | b"LO" | b"DT" | b"CR" | b"FA" | b"FR" | b"FW" | b"FX" | b"KA" | b"KR" | b"KW"
            | b"KX" => 0x0001_0000,
            _ => return None,
        };
    }
    Some(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Caller<'static> {
        Caller {
            name: "alice",
            root: false,
        }
    }

    fn bob() -> Caller<'static> {
        Caller {
            name: "bob",
            root: false,
        }
    }

    fn grants(sddl: &str, caller: &Caller<'_>) -> bool {
        Sddl::parse(sddl).expect(sddl).grants_listen(caller)
    }

    #[test]
    fn deny_before_allow_as_windows_evaluates() {
        let s = "D:(D;;GX;;;alice)(A;;GX;;;WD)";
        assert!(!grants(s, &alice()));
        assert!(grants(s, &bob()));
        // The other order: the allow entry decides first.
        assert!(grants("D:(A;;GX;;;WD)(D;;GX;;;alice)", &alice()));
        // A deny of another right does not decide `listen`.
        assert!(grants("D:(D;;GW;;;alice)(A;;GX;;;WD)", &alice()));
        assert!(grants("D:(A;;GA;;;MACHINE\\alice)", &alice()));
        assert!(grants("D:(A;;0x20000000;;;S-1-1-0)", &alice()));
        assert!(!grants("D:(A;;GR;;;WD)", &alice()));
        assert!(!grants("D:(A;;GX;;;BA)", &alice()));
        assert!(grants(
            "D:(A;;GX;;;BA)",
            &Caller {
                name: "root",
                root: true
            }
        ));
        assert!(grants("O:BAG:BAD:P(A;;GX;;;bob)", &bob()));
    }

    #[test]
    fn what_cannot_be_evaluated_is_refused_with_the_reason() {
        for (bad, why) in [
            ("(A;;GX;;;WD)", "no DACL"),
            ("D:", "no entries"),
            ("D:(OA;;GX;;;WD)", "entry type 'OA'"),
            ("D:(A;;GX;;;S-1-5-21-1-2-3-1001)", "names no account"),
            ("D:(A;;GX;;;LS)", "alias LS"),
            ("D:(A;;ZZ;;;WD)", "rights 'ZZ'"),
            ("D:(A;;GX;;WD)", "six fields"),
            ("D:(A;;GX;1234;;WD)", "object entries"),
            ("D:(A;;GX;;;WD", "not closed"),
            ("D:(A;;GX;;;WD)x(A;;GX;;;WD)", "not an entry"),
        ] {
            let err = Sddl::parse(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
