//! Completing a certificate's chain from the store, as HTTP.sys builds the chain it
//! sends from the machine's certificate stores: a leaf imported without its
//! intermediates is served with the store's CA certificates that issued it.

use rustls_pki_types::CertificateDer;

use super::info::{is_self_issued, issued_by, parse};
use super::Certificate;

/// Longest chain built; real chains have one to three intermediates.
const MAX_DEPTH: usize = 8;

/// Appends to each certificate's chain the store's CA certificates (the leaf of any
/// entry with `CA:true`, typically an intermediate imported alone) that issued its
/// last certificate, by issuer/subject name and, when both are present, authority /
/// subject key identifier. Stops at a self-issued certificate; roots are never
/// appended (clients must have them already, and sending them only costs bytes).
pub fn complete_chains(certs: &mut [Certificate]) {
    let pool: Vec<CertificateDer<'static>> = certs
        .iter()
        .filter(|c| c.info.is_ca && !c.info.is_self_signed)
        .filter_map(|c| c.chain.first().cloned())
        .collect();
    if pool.is_empty() {
        return;
    }
    for cert in certs.iter_mut() {
        while cert.chain.len() < MAX_DEPTH {
            let Some(next) = cert.chain.last().and_then(|last| issuer_in(last, &pool)) else {
                break;
            };
            // A loop (two CAs that name each other) ends here.
            if cert.chain.iter().any(|c| c.as_ref() == next.as_ref()) {
                break;
            }
            cert.chain.push(next);
        }
    }
}

/// The certificate in `pool` that issued `child`; none when `child` is self-issued
/// (a root) or cannot be read.
fn issuer_in(
    child: &CertificateDer<'static>,
    pool: &[CertificateDer<'static>],
) -> Option<CertificateDer<'static>> {
    let child = parse(child.as_ref()).ok()?;
    if is_self_issued(&child) {
        return None;
    }
    pool.iter()
        .find(|c| parse(c.as_ref()).is_ok_and(|issuer| issued_by(&child, &issuer)))
        .cloned()
}
