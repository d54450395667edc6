//! portshare: a personal HTTP/HTTPS server with HTTP.sys's port-sharing model.
//!
//! The modules follow a request's path, top down, and none imports one
//! above it (`tests/module_graph.rs` checks): `app` assembles the server;
//! `server` listens and accepts, `tls` terminates TLS, `server::guard`
//! applies HTTP.sys's request checks and timers, `server::direct` or hyper
//! parse the request; `dispatch` routes it through `registry` (the live
//! registrations, matched by `urlprefix`) to `site` or `proxy`; `errors` is
//! the one place where a failure becomes an HTTP response; `logs` writes
//! the access and httperr logs; `acme` keeps ACME certificates bound
//! (its HTTP-01 answers are a `registry` handler). Below them sit the
//! shared pieces: `conn` (what a handler knows about its connection),
//! `body`, `headers`, `workers`, `config`, and `winerror` (the Windows
//! error numbers netsh and the control channel report). The command-line
//! corner — `cli`, `netsh`, `certs`' commands, `store` edits — is never
//! imported by the server.

pub mod acme;
pub mod app;
pub mod atomic_file;
pub mod auth;
pub mod body;
pub mod certs;
pub mod cli;
pub mod compression;
pub mod config;
pub mod conn;
pub mod control;
pub mod dispatch;
pub mod errors;
pub mod headers;
pub mod health;
pub mod logs;
pub mod maintenance;
pub mod metrics;
pub mod netsh;
pub mod proxy;
pub mod registry;
pub mod sddl;
pub mod server;
pub mod site;
pub mod store;
pub mod tls;
pub mod urlprefix;
pub mod winerror;
pub mod workers;
