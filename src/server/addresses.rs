//! The addresses the server listens on: GLOBAL.INI's `listen=`, unless the
//! store's IP listen list (`netsh http add iplisten`, HTTP.sys's
//! `ListenOnlyList`) names some, in which case those alone, as on HTTP.sys.
//!
//! Apart from the listeners because the list has two sources and changes
//! while the server runs: the control channel tells it to look again after
//! a netsh command changed the store, and the listeners follow the watch.

use std::net::IpAddr;

use tokio::sync::watch;

use crate::store::Store;

/// The current listening addresses, and where they come from.
pub struct ListenAddresses {
    configured: Vec<IpAddr>,
    current: watch::Sender<Vec<IpAddr>>,
}

impl ListenAddresses {
    /// The addresses for `configured` (`listen=`) and the store's list.
    pub fn new(configured: Vec<IpAddr>, store: &Store) -> ListenAddresses {
        let this = ListenAddresses {
            current: watch::channel(configured.clone()).0,
            configured,
        };
        this.follow(store);
        this
    }

    /// Re-reads the store's IP listen list; the listeners follow a change.
    /// A store that cannot be read leaves the addresses as they are (and
    /// says so in the log).
    pub fn follow(&self, store: &Store) {
        let wanted = match store.iplisten() {
            Ok(list) if list.is_empty() => self.configured.clone(),
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "the IP listen list was not read; listening addresses unchanged");
                return;
            }
        };
        self.current.send_if_modified(|current| {
            if *current == wanted {
                false
            } else {
                *current = wanted;
                true
            }
        });
    }

    /// The addresses in use now.
    pub fn current(&self) -> Vec<IpAddr> {
        self.current.borrow().clone()
    }

    /// Changes whenever the addresses do.
    pub fn subscribe(&self) -> watch::Receiver<Vec<IpAddr>> {
        self.current.subscribe()
    }
}
