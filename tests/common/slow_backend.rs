//! A backend that holds its answers: each request waits until the test
//! sets `release`, so requests stay in flight (queue limits, metrics).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A backend that answers each request only once `release` is set;
/// `arrived` counts the requests it has read.
pub struct SlowBackend {
    pub port: u16,
    pub arrived: Arc<AtomicUsize>,
    pub release: Arc<AtomicBool>,
}

impl SlowBackend {
    pub fn start() -> SlowBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let port = listener.local_addr().expect("backend addr").port();
        let arrived = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        let (a, r) = (arrived.clone(), release.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (a, r) = (a.clone(), r.clone());
                std::thread::spawn(move || serve(stream, &a, &r));
            }
        });
        SlowBackend {
            port,
            arrived,
            release,
        }
    }
}

fn serve(stream: TcpStream, arrived: &AtomicUsize, release: &AtomicBool) {
    let mut reader = BufReader::new(stream);
    loop {
        // One request head (GET, no body).
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        arrived.fetch_add(1, Ordering::SeqCst);
        while !release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        if reader.get_mut().write_all(answer).is_err() {
            return;
        }
    }
}
