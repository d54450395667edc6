//! Issue 19's points that need no second local user: a backend that leads
//! back to the server (refused when it names the server, 508 when a chain
//! of servers loops), and a registration on a port another program holds.

mod common;

use common::{run_cli, TestServer};

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn a_configured_backend_that_is_the_server_itself_is_refused_at_start() {
    for backend in [
        "http://127.0.0.1:{port}",
        "http://localhost:{port}",
        "http://[::ffff:127.0.0.1]:{port}",
    ] {
        let s = TestServer::prepare(
            &format!("\n[app:loop]\nprefix=http://+:{{port}}/loop/\nbackend={backend}\n"),
            |_| {},
        );
        let out = run_cli(&s.config, &[]);
        assert!(!out.status.success(), "{backend}: the server started");
        let said = text(&out);
        assert!(
            said.contains("is this server itself") && said.contains("would loop"),
            "{backend}: {said}"
        );
    }
}

#[test]
fn a_registration_whose_backend_is_the_server_itself_is_refused() {
    let s = TestServer::start("");
    let prefix = format!("http://+:{}/loop/", s.port);
    let backend = format!("http://127.0.0.1:{}", s.port);
    let out = run_cli(&s.config, &["register", &prefix, "--backend", &backend]);
    assert_eq!(out.status.code(), Some(87), "{}", text(&out));
    assert!(text(&out).contains("would loop"), "{}", text(&out));
}

/// Two servers whose applications point at each other: the request comes
/// back to the first one, which answers 508 instead of forwarding it again.
#[test]
fn a_loop_through_two_servers_is_508_at_the_second_pass() {
    let a = TestServer::prepare(
        "\n[app:loop]\nprefix=http://+:{port}/loop/\nbackend=http://127.0.0.1:OTHER\n",
        |_| {},
    );
    let b = TestServer::prepare(
        "\n[app:loop]\nprefix=http://+:{port}/loop/\nbackend=http://127.0.0.1:OTHER\n",
        |_| {},
    );
    for (me, other) in [(&a, b.port), (&b, a.port)] {
        let ini = std::fs::read_to_string(&me.config).expect("config");
        std::fs::write(&me.config, ini.replace("OTHER", &other.to_string())).expect("config");
    }
    let a = a.launch(&[]);
    let _b = b.launch(&[]);
    // Both the direct path (a bodiless GET) and hyper's (a POST).
    let r = a.get("/loop/x");
    assert_eq!(r.status, 508, "{}", r.head);
    let r = a.request(
        "POST /loop/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(r.status, 508, "{}", r.head);
}

#[test]
fn a_registration_on_a_port_another_program_holds_is_refused() {
    let s = TestServer::start("");
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let backend = std::net::TcpListener::bind("127.0.0.1:0").expect("backend");
    let backend = format!("http://{}", backend.local_addr().expect("addr"));
    let prefix = format!("http://+:{port}/app/");
    let out = run_cli(&s.config, &["register", &prefix, "--backend", &backend]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(32), "{said}");
    assert!(said.contains("the port cannot be listened on"), "{said}");
    assert!(!said.contains("GLOBAL.INI"), "{said}");
}
