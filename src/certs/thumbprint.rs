//! Certificate thumbprints: SHA-1 of the leaf certificate's DER, as Windows uses them.

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};

/// SHA-1 of a certificate's DER encoding (what `netsh`'s `certhash` and PowerShell's
/// `Thumbprint` show).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Thumbprint(pub [u8; 20]);

impl Thumbprint {
    /// The thumbprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha1::digest(der).into())
    }

    /// Uppercase hex, as PowerShell prints it.
    pub fn to_upper(&self) -> String {
        hex::encode_upper(self.0)
    }

    /// The raw 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

/// Lowercase hex, as `netsh http show sslcert` prints it.
impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({self})")
    }
}

/// A string that is not a thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{input}' is not a certificate thumbprint: expected 40 hexadecimal digits \
     (the SHA-1 hash shown by `portshare cert list`, netsh or PowerShell)"
)]
pub struct ThumbprintError {
    /// What was given (trimmed).
    pub input: String,
}

/// Characters Windows tools put around or inside a copied thumbprint that carry no meaning:
/// whitespace, the left-to-right / right-to-left marks the certificate dialog copies, and
/// a byte-order mark.
fn is_ignorable(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{200E}' | '\u{200F}' | '\u{FEFF}' | '\u{200B}')
}

impl FromStr for Thumbprint {
    type Err = ThumbprintError;

    /// Accepts upper or lower case hex, with or without spaces (the certificate dialog shows
    /// `46 aa b7 …`), and ignores the invisible U+200E mark the dialog copies with it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ThumbprintError {
            input: s.trim_matches(is_ignorable).to_string(),
        };
        let digits: String = s.chars().filter(|c| !is_ignorable(*c)).collect();
        if digits.len() != 40 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(err());
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(&digits, &mut out).map_err(|_| err())?;
        Ok(Self(out))
    }
}

impl serde::Serialize for Thumbprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Thumbprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "46aab740254a12c9146142067f5cf69e583154ad";

    #[test]
    fn display_lower_and_upper() {
        let t: Thumbprint = HEX.parse().unwrap();
        assert_eq!(t.to_string(), HEX);
        assert_eq!(t.to_upper(), HEX.to_uppercase());
    }

    #[test]
    fn parse_variants() {
        let t: Thumbprint = HEX.parse().unwrap();
        assert_eq!(HEX.to_uppercase().parse::<Thumbprint>().unwrap(), t);
        let spaced = "46 aa b7 40 25 4a 12 c9 14 61 42 06 7f 5c f6 9e 58 31 54 ad";
        assert_eq!(spaced.parse::<Thumbprint>().unwrap(), t);
        let dialog = format!("\u{200E}{}", spaced.to_uppercase());
        assert_eq!(dialog.parse::<Thumbprint>().unwrap(), t);
        assert_eq!(format!("  {HEX}\n").parse::<Thumbprint>().unwrap(), t);
    }

    #[test]
    fn parse_errors() {
        for bad in [
            "",
            "abc",
            &HEX[..39],
            &format!("{HEX}00"),
            &HEX.replace('a', "g"),
        ] {
            let e = bad.parse::<Thumbprint>().unwrap_err();
            assert!(
                e.to_string().contains("not a certificate thumbprint"),
                "{e}"
            );
        }
        // Non-ASCII must not panic on byte slicing.
        assert!("é".repeat(20).parse::<Thumbprint>().is_err());
    }

    #[test]
    fn of_der_is_sha1() {
        // SHA-1("abc")
        assert_eq!(
            Thumbprint::of_der(b"abc").to_string(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn serde_round_trip() {
        let t: Thumbprint = HEX.parse().unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, format!("\"{HEX}\""));
        assert_eq!(serde_json::from_str::<Thumbprint>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Thumbprint>("\"zz\"").is_err());
    }
}
