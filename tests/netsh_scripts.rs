//! The binary invoked as `netsh` (a symlink in a temporary folder): piped
//! commands, `-c`, `-f` and `exec` scripts, bad input, and the `http dump`
//! round trip. Each test has its own configuration and store.

#![cfg(unix)]

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::netsh::Netsh;
use common::TestServer;

const APPID: &str = "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}";
/// tests/fixtures/certs/thumbprints.txt
const RSA_THUMB: &str = "35e08217548a9cebf78f8ac92feedcd917a8006a";

impl Netsh {
    /// As [`Netsh::new`], with the server running.
    fn started(extra: &str) -> Netsh {
        Netsh::with(
            TestServer::prepare(extra, |public| {
                std::fs::write(public.join("hello.txt"), "hello\n").expect("write hello.txt");
            })
            .launch(&[]),
        )
    }

    fn script(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir().join(name);
        std::fs::write(&path, text).expect("write script");
        path
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const EMPTY_URLACL: &str = "\nURL Reservations:\n-----------------\n\n";

#[test]
fn piped_commands_and_c_option() {
    let n = Netsh::new();
    // The piped form (`echo "http show urlacl" | netsh`), with CRLF as
    // PowerShell sends it: never the server.
    let o = n.run(&[], "http show urlacl\r\n");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), EMPTY_URLACL);
    assert!(!stderr(&o).contains("starting"), "{}", stderr(&o));

    // Entering the context, then its commands without `http`.
    let o = n.run(
        &[],
        "http\nadd urlacl url=http://+:8080/a/ user=Everyone\nshow urlacl\nexit\nshow never\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("\nURL reservation successfully added\n\n"),
        "{out}"
    );
    assert!(
        out.contains("    Reserved URL            : http://+:8080/a/\n"),
        "{out}"
    );

    let o = n.run(&["-c", "http", "show", "urlacl"], "");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("http://+:8080/a/"), "{}", stdout(&o));

    // An unknown verb and an unknown context: netsh's message and 87.
    let o = n.run(&["-c", "http", "frob", "urlacl"], "");
    assert_eq!(o.status.code(), Some(87), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("The following command was not found: http frob urlacl."),
        "{}",
        stdout(&o)
    );
    let o = n.run(&[], "wlan show profiles\n");
    assert_eq!(o.status.code(), Some(87), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("The following command was not found: wlan show profiles."),
        "{}",
        stdout(&o)
    );
}

#[test]
fn exec_and_f_run_scripts_past_a_failing_line() {
    let n = Netsh::new();
    let script = n.script(
        "setup.txt",
        "# a comment\n\npushd http\nadd timeout timeouttype=idleconnectiontimeout value=60\n\
         delete urlacl url=http://+:9/none/\npopd\nhttp show timeout\n",
    );
    let script = script.to_string_lossy().into_owned();
    for form in [["exec", script.as_str()], ["-f", script.as_str()]] {
        let o = n.run(&form, "");
        let out = stdout(&o);
        // The failing delete (error 2) did not stop the `show` after it.
        assert_eq!(o.status.code(), Some(2), "{form:?}\n{out}");
        assert!(
            out.contains("Url reservation delete failed, Error: 2\n"),
            "{out}"
        );
        assert!(
            out.contains("Idle Connection Timeout (secs) : 60\n"),
            "{out}"
        );
    }
    // All lines succeed: exit 0.
    let ok = n.script("ok.txt", "pushd http\nshow timeout\npopd\n");
    let o = n.run(&["exec", &ok.to_string_lossy()], "");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn a_missing_script_is_error_2() {
    let n = Netsh::new();
    for form in [
        &["exec", "no-such-script.txt"][..],
        &["-f", "no-such-script.txt"],
    ] {
        let o = n.run(form, "");
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(2), "{form:?}\n{out}");
        assert!(
            out.starts_with("\nError: 2\nThe system cannot find the file specified.\nportshare: cannot read the script no-such-script.txt:"),
            "{out}"
        );
    }
}

#[test]
fn dump_then_exec_recreates_the_configuration() {
    let n = Netsh::new();
    n.import_fixture_cert("rsa.pem");
    let setup = format!(
        "pushd http\n\
         add sslcert ipport=0.0.0.0:8443 certhash={RSA_THUMB} appid={APPID} disablehttp2=enable disablequic=enable enablesessionticket=enable disableocspstapling=enable revocationfreshnesstime=60\n\
         add sslcert hostnameport=site.test:8443 certhash={RSA_THUMB} appid={APPID} clientcertnegotiation=enable sslctlstorename=CA\n\
         add urlacl url=http://+:8080/a/ user=Everyone delegate=yes\n\
         add urlacl url=http://+:8080/b/ sddl=D:(A;;GX;;;WD)\n\
         add timeout timeouttype=headerwaittimeout value=45\n\
         popd\n"
    );
    let setup = n.script("setup.txt", &setup);
    let o = n.run(&["exec", &setup.to_string_lossy()], "");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    let shows = |n: &Netsh| -> Vec<String> {
        ["sslcert", "urlacl", "timeout"]
            .iter()
            .map(|what| {
                let o = n.run(&["http", "show", what], "");
                assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
                stdout(&o)
            })
            .collect()
    };
    let before = shows(&n);
    assert!(before[0].contains("Enable Session Ticket"), "{}", before[0]);

    let o = n.run(&["http", "dump"], "");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let dump = stdout(&o);
    assert!(
        dump.starts_with("#========================\n# HTTP Configuration\n#========================\npushd http\n"),
        "{dump}"
    );
    assert!(
        dump.ends_with("popd\n# End of HTTP configuration\n"),
        "{dump}"
    );

    // Everything deleted: a fresh store (the certificate stays).
    std::fs::remove_file(n.dir().join("certs").join("sslcert.json")).expect("remove store");
    assert_eq!(
        stdout(&n.run(&["http", "show", "urlacl"], "")),
        EMPTY_URLACL
    );

    let file = n.script("dump.txt", &dump);
    let o = n.run(&["exec", &file.to_string_lossy()], "");
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(shows(&n), before);
}

#[test]
fn show_setting_maps_the_http_section() {
    let n = Netsh::with(TestServer::prepare(
        "\n[http]\nMaxConnections=50\nIdleConnectionTimeout=30\n",
        |_| {},
    ));
    // The piped form, in the `http` context; `add timeout` wins over [http].
    let o = n.run(
        &[],
        "pushd http\nadd timeout timeouttype=headerwaittimeout value=45\nshow setting\npopd\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "\nSetting value for the HTTP service:\n-----------------------------------\n\n"
        ),
        "{out}"
    );
    // listen=127.0.0.1,::1 (the tests' configuration): localhost only.
    for line in [
        "    EnableNonLocalhostListening  : Disabled\n",
        "    MaxConnections               : 50\n",
        "    IdleConnectionTimeout (secs) : 30\n",
        "    HeaderWaitTimeout (secs)     : 45\n",
        "    EntityBodyTimeout (secs)     : 120\n",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
    let o = n.run(&["http", "show", "setting", "x=y"], "");
    assert_eq!(o.status.code(), Some(87), "{}", stdout(&o));
}

#[test]
fn flush_logbuffer_and_request_queue_view_with_a_running_server() {
    let n = Netsh::started("");
    let r = n.server.get("/hello.txt");
    assert_eq!(r.status, 200);
    // Once `flush logbuffer` has answered, the request's line is in the file.
    let o = n.run(&["-c", "http", "flush", "logbuffer"], "");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "\nLog buffer flushed successfully.\n\n");
    let log = std::fs::read_to_string(n.server.logs().join("access.log")).expect("access.log");
    assert!(log.contains("\"GET /hello.txt HTTP/1.1\" 200"), "{log}");
    assert!(n.server.logs().join("httperr.log").exists());

    // The request-queue view: the built-in site's queue first, then its
    // server session; `verbose=yes` is accepted.
    let o = n.run(&[], "http show servicestate view=requestq verbose=yes\n");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("\nSnapshot of HTTP service state (Request Queue View):\n"),
        "{out}"
    );
    let queue = out.find("\nRequest queue name: ").expect("a request queue");
    let session = out.find("\nServer session ID: ").expect("a server session");
    assert!(queue < session, "{out}");
    assert!(out.contains(&format!(":{}/", n.server.port)), "{out}");
}

#[test]
fn flush_logbuffer_without_a_server_fails() {
    let n = Netsh::new();
    let o = n.run(&[], "http flush logbuffer\n");
    let out = stdout(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(
        out.starts_with("\nFlush log buffer failed, Error: "),
        "{out}"
    );
    assert!(out.contains("only while the server runs"), "{out}");
}
