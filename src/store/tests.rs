//! Unit tests of the store: the JSON shape, the locked update under
//! concurrency, error messages that name the file, and the lookup order.

use std::fs;
use std::net::SocketAddr;
use std::sync::Arc;

use super::*;

fn sample_binding(port: u16) -> SslBinding {
    SslBinding {
        key: BindingKey::IpPort(SocketAddr::from(([0, 0, 0, 0], port))),
        certhash: "46aab740254a12c9146142067f5cf69e583154ad".into(),
        appid: "{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}".into(),
        certstorename: "MY".into(),
        flags: BindingFlags::default(),
    }
}

#[test]
fn missing_file_is_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::in_cert_dir(dir.path());
    assert_eq!(store.load().unwrap(), StoreData::default());
}

#[test]
fn key_display_matches_netsh() {
    let v4 = BindingKey::IpPort("0.0.0.0:443".parse().unwrap());
    let v6 = BindingKey::IpPort("[::]:443".parse().unwrap());
    let ip = BindingKey::IpPort("10.0.0.1:443".parse().unwrap());
    let host = BindingKey::HostnamePort("site.test".into(), 443);
    let ccs = BindingKey::Ccs(443);
    assert_eq!(v4.to_string(), "0.0.0.0:443");
    assert_eq!(v6.to_string(), "[::]:443");
    assert_eq!(ip.to_string(), "10.0.0.1:443");
    assert_eq!(host.to_string(), "site.test:443");
    assert_eq!(ccs.to_string(), "443");
}

#[test]
fn round_trip_all_sections_and_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::in_cert_dir(dir.path());
    let mut host = sample_binding(443);
    host.key = BindingKey::HostnamePort("site.test".into(), 8443);
    let mut ccs = sample_binding(443);
    ccs.key = BindingKey::Ccs(444);
    ccs.certhash.clear();
    ccs.certstorename.clear();
    store
        .update(|d| {
            d.sslcert.push(sample_binding(443));
            d.sslcert.push(host.clone());
            d.sslcert.push(ccs.clone());
            d.urlacl.push(UrlReservation {
                url: "http://+:80/api/".into(),
                user: "\\Everyone".into(),
                listen: true,
                delegate: false,
                sddl: "D:(A;;GX;;;WD)".into(),
            });
            d.timeouts.idle_connection = Some(60);
            Ok::<_, ()>(())
        })
        .unwrap();
    let text = fs::read_to_string(store.path()).unwrap();
    assert!(text.contains("\"ipport\": \"0.0.0.0:443\""), "{text}");
    assert!(
        text.contains("\"hostnameport\": \"site.test:8443\""),
        "{text}"
    );
    assert!(text.contains("\"ccs\": 444"), "{text}");
    assert!(text.contains("\"idle_connection\": 60"), "{text}");
    assert!(!text.contains("header_wait"), "{text}");
    let data = store.load().unwrap();
    assert_eq!(data.sslcert, vec![sample_binding(443), host, ccs]);
    assert_eq!(data.urlacl.len(), 1);
    assert_eq!(data.timeouts.idle_connection_secs(), 60);
    assert_eq!(data.timeouts.header_wait_secs(), 120);
    // No temp files left behind; the lock file stays.
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, vec!["sslcert.json", "sslcert.json.lock"]);
}

#[test]
fn concurrent_updates_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::in_cert_dir(dir.path()));
    let threads: Vec<_> = (0..8u16)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..10u16 {
                    store
                        .update(|d| {
                            d.sslcert.push(sample_binding(1000 + t * 100 + i));
                            Ok::<_, ()>(())
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let data = store.load().unwrap();
    assert_eq!(data.sslcert.len(), 80);
}

#[test]
fn failing_closure_leaves_file_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::in_cert_dir(dir.path());
    store
        .update(|d| {
            d.sslcert.push(sample_binding(443));
            Ok::<_, ()>(())
        })
        .unwrap();
    let before = fs::read(store.path()).unwrap();
    let r = store.update(|d| {
        d.sslcert.clear();
        d.timeouts.header_wait = Some(5);
        Err::<(), _>("nope")
    });
    assert!(matches!(r, Err(UpdateError::Rejected("nope"))));
    assert_eq!(fs::read(store.path()).unwrap(), before);
}

#[test]
fn invalid_result_is_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::in_cert_dir(dir.path());
    let r = store.update(|d| {
        d.sslcert.push(sample_binding(443));
        d.sslcert.push(sample_binding(443));
        Ok::<_, ()>(())
    });
    assert!(matches!(
        r,
        Err(UpdateError::Store(StoreError::Invalid { .. }))
    ));
    assert!(!store.path().exists());
}

#[test]
fn malformed_file_error_names_file_and_location() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::in_cert_dir(dir.path());
    fs::write(
        store.path(),
        "{\n  \"version\": 1,\n  \"sslcert\": [ oops ]\n}\n",
    )
    .unwrap();
    let err = store.load().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&store.path().display().to_string()), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    // update refuses too, and leaves the file alone.
    let before = fs::read(store.path()).unwrap();
    let r = store.update(|_| Ok::<_, ()>(()));
    assert!(matches!(
        r,
        Err(UpdateError::Store(StoreError::Parse { .. }))
    ));
    assert_eq!(fs::read(store.path()).unwrap(), before);
}

#[test]
fn invalid_content_error_names_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::in_cert_dir(dir.path());
    fs::write(
        store.path(),
        r#"{"version":1,"sslcert":[{"ipport":"0.0.0.0:443","certhash":"XYZ","appid":"{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}"}]}"#,
    )
    .unwrap();
    let msg = store.load().unwrap_err().to_string();
    assert!(msg.contains("sslcert.json"), "{msg}");
    assert!(msg.contains("certhash"), "{msg}");

    fs::write(store.path(), r#"{"version":2}"#).unwrap();
    let msg = store.load().unwrap_err().to_string();
    assert!(msg.contains("unsupported version 2"), "{msg}");
}

#[test]
fn unchanged_update_does_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::in_cert_dir(dir.path());
    store.update(|_| Ok::<_, ()>(())).unwrap();
    assert!(!store.path().exists());
}

#[test]
fn lookup_order_follows_httpsys() {
    let mut d = StoreData::default();
    let mut any4 = sample_binding(443);
    any4.certhash = "1".repeat(40);
    let mut exact = sample_binding(443);
    exact.key = BindingKey::IpPort("10.0.0.1:443".parse().unwrap());
    exact.certhash = "2".repeat(40);
    let mut sni = sample_binding(443);
    sni.key = BindingKey::HostnamePort("site.test".into(), 443);
    sni.certhash = "3".repeat(40);
    let mut ccs = sample_binding(443);
    ccs.key = BindingKey::Ccs(443);
    ccs.certhash = "4".repeat(40);
    let mut any6 = sample_binding(443);
    any6.key = BindingKey::IpPort("[::]:443".parse().unwrap());
    any6.certhash = "5".repeat(40);
    d.sslcert = vec![any4, exact, sni, ccs, any6];
    let hash = |local: &str, sni: Option<&str>| {
        d.lookup_binding(local.parse().unwrap(), sni)
            .map(|b| b.certhash.chars().next().unwrap())
    };
    assert_eq!(hash("10.0.0.1:443", Some("site.test")), Some('2'));
    assert_eq!(hash("10.0.0.2:443", Some("Site.Test.")), Some('3'));
    assert_eq!(hash("10.0.0.2:443", Some("other.test")), Some('4'));
    assert_eq!(hash("10.0.0.2:443", None), Some('1'));
    assert_eq!(hash("[::ffff:10.0.0.1]:443", None), Some('2'));
    assert_eq!(hash("[::1]:443", None), Some('5'));
    assert_eq!(hash("10.0.0.2:444", None), None);
}

#[test]
fn guid_check() {
    assert!(is_braced_guid("{a227f2f9-d103-4e0f-92a4-7086c8ab35ac}"));
    assert!(is_braced_guid("{A227F2F9-D103-4E0F-92A4-7086C8AB35AC}"));
    assert!(!is_braced_guid("a227f2f9-d103-4e0f-92a4-7086c8ab35ac"));
    assert!(!is_braced_guid("{a227f2f9-d103-4e0f-92a4-7086c8ab35a}"));
    assert!(!is_braced_guid("{g227f2f9-d103-4e0f-92a4-7086c8ab35ac}"));
}
