//! portshare: a personal HTTP/HTTPS server with HTTP.sys's port-sharing model.
//!
//! The modules follow a request's path: `server` accepts and speaks HTTP,
//! `router`/`urlprefix` pick the registration, `site`/`proxy` answer, and
//! `errors` is the one place where a failure becomes an HTTP.sys response.

pub mod app;
pub mod atomic_file;
pub mod body;
pub mod certs;
pub mod cli;
pub mod config;
pub mod conn;
pub mod control;
pub mod dispatch;
pub mod errors;
pub mod headers;
pub mod logs;
pub mod maintenance;
pub mod netsh;
pub mod proxy;
pub mod registry;
pub mod server;
pub mod site;
pub mod store;
pub mod tls;
pub mod urlprefix;
pub mod workers;
