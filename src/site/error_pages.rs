//! A site's own error pages (`error_page.404=/404.html`): when the site
//! itself answers with such a status, the body is that file of its folder,
//! with the status and headers of the answer kept (`Allow` on a 405, say).
//!
//! Only answers the site makes; HTTP.sys's own pages (Invalid Hostname,
//! Request Too Long, the 503 of a gone application) are decided before a
//! site is chosen and stay byte-exact.

use std::collections::BTreeMap;

use http::header::{self, HeaderValue};
use http::Response;

use super::files::{FileResolver, Resolved};
use super::path::SitePath;
use crate::body::Body;

pub(super) struct ErrorPages {
    pages: BTreeMap<u16, String>,
}

impl ErrorPages {
    pub(super) fn new(pages: &BTreeMap<u16, String>) -> ErrorPages {
        ErrorPages {
            pages: pages.clone(),
        }
    }

    /// `res` (an error answer, made by `crate::errors`) with the site's
    /// page as the body when it has one for the status and the file can be
    /// read.
    pub(super) async fn apply(
        &self,
        mut res: Response<Body>,
        files: &FileResolver,
    ) -> Response<Body> {
        let Some(page) = self.pages.get(&res.status().as_u16()) else {
            return res;
        };
        let found = match SitePath::parse(page, 0) {
            Ok(path) => files.resolve(&path).await.ok(),
            Err(_) => None,
        };
        let Some(resolved) = found else {
            tracing::warn!(page = %page, status = res.status().as_u16(), "the site's error page cannot be read; sending the built-in one");
            return res;
        };
        let Resolved::File(file) = &*resolved else {
            tracing::warn!(page = %page, "the site's error page is a folder; sending the built-in one");
            return res;
        };
        let bytes = match &file.plain.data {
            Some(data) => data.clone(),
            None => match tokio::fs::read(&file.plain.path).await {
                Ok(b) => b.into(),
                Err(e) => {
                    tracing::warn!(page = %page, error = %e, "the site's error page cannot be read; sending the built-in one");
                    return res;
                }
            },
        };
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, file.content_type.clone());
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        *res.body_mut() = Body::full(bytes);
        res
    }
}
