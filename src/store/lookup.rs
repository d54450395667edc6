//! Finding records in loaded [`StoreData`]: a binding by key, a reservation
//! by URL, and the binding HTTP.sys would pick for a TLS handshake (the
//! order the TLS layer depends on, tested on its own).

use std::net::{IpAddr, SocketAddr};

use crate::urlprefix::UrlPrefix;

use super::schema::{BindingKey, SslBinding, StoreData, UrlReservation};

impl SslBinding {
    /// Whether portshare made this binding by itself (see [`super::AUTOMATIC_APPIDS`]).
    pub fn is_automatic(&self) -> bool {
        super::AUTOMATIC_APPIDS
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&self.appid))
    }
}

impl StoreData {
    pub fn binding(&self, key: &BindingKey) -> Option<&SslBinding> {
        self.sslcert.iter().find(|b| &b.key == key)
    }

    /// When the user's wildcard binding for one family on `port` has no
    /// user-made twin for the other family while the server listens on both
    /// (`listen`): a sentence saying what clients of the other family get.
    /// Only one binding per family exists, so the check is per port.
    pub fn lone_family_warning(&self, port: u16, listen: &[IpAddr]) -> Option<String> {
        use std::net::{Ipv4Addr, Ipv6Addr};
        let v4 = BindingKey::IpPort(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port));
        let v6 = BindingKey::IpPort(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port));
        if !(listen.iter().any(IpAddr::is_ipv4) && listen.iter().any(IpAddr::is_ipv6)) {
            return None;
        }
        let user = |k: &BindingKey| self.binding(k).filter(|b| !b.is_automatic());
        let (mine, other, family) = match (user(&v4), user(&v6)) {
            (Some(_), None) => (&v4, &v6, "IPv6 (localhost often resolves to ::1)"),
            (None, Some(_)) => (&v6, &v4, "IPv4"),
            _ => return None,
        };
        let what = match self.binding(other) {
            Some(_) => format!("still get the automatic certificate bound to {other}"),
            None => format!("will be refused (no binding for {other})"),
        };
        Some(format!(
            "{mine} is bound to your certificate but {other} is not, and the server listens \
             on both families on port {port}: clients connecting over {family} {what}. Bind \
             {other} to the same certificate too (http add sslcert ipport={other} …)."
        ))
    }

    /// The reservation for `url`.
    ///
    /// Reservations are kept as typed but compared as URL prefixes
    /// (`UrlPrefix`'s equality: scheme, host, port and the normalised,
    /// case-insensitive path), so `/API/` and `/%61pi/` are `/api/`.
    pub fn reservation(&self, url: &str) -> Option<&UrlReservation> {
        self.reservation_index(url).map(|i| &self.urlacl[i])
    }

    /// Where [`StoreData::reservation`] is in `urlacl`.
    pub fn reservation_index(&self, url: &str) -> Option<usize> {
        let wanted = UrlPrefix::parse(url).ok();
        self.urlacl
            .iter()
            .position(|r| match (&wanted, UrlPrefix::parse(&r.url)) {
                (Some(w), Ok(have)) => *w == have,
                // One of them is not a prefix (an old store): as text.
                _ => r.url.eq_ignore_ascii_case(url),
            })
    }

    /// The binding HTTP.sys would use for a handshake on local address `local`
    /// with SNI name `sni`: exact `IP:port` → `hostname:port` → `ccs=port` →
    /// `0.0.0.0:port` (IPv4) / `[::]:port` (IPv6). IPv4-mapped IPv6 local
    /// addresses count as IPv4.
    pub fn lookup_binding(&self, local: SocketAddr, sni: Option<&str>) -> Option<&SslBinding> {
        let ip = match local.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(local.ip()),
            v4 => v4,
        };
        let port = local.port();
        let exact = BindingKey::IpPort(SocketAddr::new(ip, port));
        if let Some(b) = self.binding(&exact) {
            return Some(b);
        }
        if let Some(name) = sni {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(b) = self.binding(&BindingKey::HostnamePort(name, port)) {
                return Some(b);
            }
            if let Some(b) = self.binding(&BindingKey::Ccs(port)) {
                return Some(b);
            }
        }
        let any: IpAddr = if ip.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        };
        self.binding(&BindingKey::IpPort(SocketAddr::new(any, port)))
    }
}
