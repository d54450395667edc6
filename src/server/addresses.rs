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
    /// `listen=` (a reload may change it).
    configured: std::sync::Mutex<Vec<IpAddr>>,
    store: std::sync::Mutex<Option<Store>>,
    current: watch::Sender<Vec<IpAddr>>,
}

impl ListenAddresses {
    /// The addresses for `configured` (`listen=`) and the store's list.
    pub fn new(configured: Vec<IpAddr>, store: &Store) -> ListenAddresses {
        let this = ListenAddresses {
            current: watch::channel(configured.clone()).0,
            configured: std::sync::Mutex::new(configured),
            store: std::sync::Mutex::new(None),
        };
        this.follow(store);
        this
    }

    /// Re-reads the store's IP listen list; the listeners follow a change.
    /// A store that cannot be read leaves the addresses as they are (and
    /// says so in the log).
    pub fn follow(&self, store: &Store) {
        *self.store.lock().unwrap_or_else(|p| p.into_inner()) = Some(store.clone());
        let configured = self
            .configured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let wanted = match store.iplisten() {
            Ok(list) if list.is_empty() => configured,
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

    /// A reloaded `listen=`; in force unless the IP listen list names
    /// addresses.
    pub fn set_configured(&self, configured: Vec<IpAddr>) {
        *self.configured.lock().unwrap_or_else(|p| p.into_inner()) = configured;
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(store) = store {
            self.follow(&store);
        }
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
