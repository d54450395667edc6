//! A running server's stdout, collected line by line as it comes, for
//! tests that wait for a log line (start the server with `RUST_LOG=info`).

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{wait_for, TestServer};

/// The server's stdout, collected line by line as it comes.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn follow(server: &mut TestServer) -> Lines {
        let lines = Lines::default();
        let out = server
            .child
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("server stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.0.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        lines
    }

    pub fn matching(&self, needle: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    pub fn all(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }

    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_for(timeout, needle, || self.matching(needle).into_iter().next())
        }));
        found.unwrap_or_else(|_| panic!("no log line with {needle:?}; the log:\n{}", self.all()))
    }
}
