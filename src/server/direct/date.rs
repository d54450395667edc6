//! The `Date` field's value for [`super::encode`], cached per second and
//! per worker thread as hyper caches it. Apart from the encoder because it
//! is the one piece of state there: a thread-local.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::HeaderValue;

thread_local! {
    /// The `Date` value for the current second, made once a second per
    /// worker rather than for every response (hyper caches it the same way).
    static DATE: RefCell<(u64, HeaderValue)> =
        const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
}

pub(super) fn put_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(cached, value)| {
        if *cached != second {
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(now)) {
                *value = v;
                *cached = second;
            }
        }
        out.extend_from_slice(value.as_bytes());
    });
}
