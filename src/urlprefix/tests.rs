//! Unit tests of the whole `urlprefix` module: parsing, Host header helpers,
//! path normalisation and routing, through the public re-exports.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn p(s: &str) -> UrlPrefix {
    UrlPrefix::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

// ----- parsing --------------------------------------------------------

#[test]
#[rustfmt::skip]
fn parse_valid_prefixes() {
    // (input, display, category)
    let cases: &[(&str, &str, Category)] = &[
        ("http://+:80/",                      "http://+:80/",                       Category::Strong),
        ("HTTP://+:80/",                      "http://+:80/",                       Category::Strong),
        ("HtTpS://*:443/",                    "https://*:443/",                     Category::Weak),
        ("http://+:80/api/",                  "http://+:80/api/",                   Category::Strong),
        ("http://+:65535/",                   "http://+:65535/",                    Category::Strong),
        ("http://+:1/",                       "http://+:1/",                        Category::Strong),
        ("http://*:8080/a/b/c/",              "http://*:8080/a/b/c/",               Category::Weak),
        ("http://WWW.Example.COM:80/Vroot/",  "http://www.example.com:80/Vroot/",   Category::Explicit),
        ("https://bücher.test:443/",          "https://xn--bcher-kva.test:443/",    Category::Explicit),
        ("https://BÜCHER.test:443/",          "https://xn--bcher-kva.test:443/",    Category::Explicit),
        ("http://localhost:80/",              "http://localhost:80/",               Category::Explicit),
        ("http://my_host:80/",                "http://my_host:80/",                 Category::Explicit),
        ("http://127.0.0.1:80/",              "http://127.0.0.1:80/",               Category::IpBound),
        ("http://[::1]:80/",                  "http://[::1]:80/",                   Category::IpBound),
        ("http://[3FFE:FFFF::6ECB:0101]:80/", "http://[3ffe:ffff::6ecb:101]:80/",   Category::IpBound),
        ("http://[::ffff:10.0.0.1]:80/",      "http://10.0.0.1:80/",                Category::IpBound),
        ("http://+:80/a%20b/",                "http://+:80/a%20b/",                 Category::Strong),
        ("http://+:80/caf%C3%A9/",            "http://+:80/caf%C3%A9/",             Category::Strong),
        ("http://+:80/a/../b/",               "http://+:80/a/../b/",                Category::Strong),
        ("http://+:80/Temporary_Listen_Addresses/", "http://+:80/Temporary_Listen_Addresses/", Category::Strong),
    ];
    for (input, display, cat) in cases {
        let prefix = p(input);
        assert_eq!(prefix.to_string(), *display, "{input}");
        assert_eq!(prefix.category(), *cat, "{input}");
        // Display round-trips to an equal prefix.
        assert_eq!(p(&prefix.to_string()), prefix, "{input}");
    }
    assert_eq!(p("HTTP://+:80/").scheme(), Scheme::Http);
    assert_eq!(p("http://+:80/A/../B/").path_key(), "/b/");
    assert_eq!(p("http://+:80/%41pi/").path_key(), "/api/");
    assert_eq!(p("http://[::1]:80/").host(), &HostRule::IpBound(IpAddr::V6(Ipv6Addr::LOCALHOST)));
}

#[test]
#[rustfmt::skip]
fn parse_invalid_prefixes() {
    // (input, a fragment the message must contain)
    let cases: &[(&str, &str)] = &[
        ("",                          "empty"),
        ("http://+:80/api",           "must end with '/' (http://+:80/api → http://+:80/api/)"),
        ("http://+:80",               "must end with '/'"),
        ("http://+:0/",               "port '0'"),
        ("http://+:65536/",           "port '65536'"),
        ("http://+:080/",             "leading zero"),
        ("http://+:-1/",              "port '-1'"),
        ("http://+:8a/",              "port '8a'"),
        ("http://+/",                 "must include a port (http://+/ → http://+:80/)"),
        ("https://+/x/",              "https://+:443/x/"),
        ("http://+:/",                "must include a port"),
        ("http://[::1:80/",           "IPv6"),
        ("http://[::1]/",             "must include a port"),
        ("http://[::1]x:80/",         "IPv6"),
        ("http://[zz::1]:80/",        "IPv6"),
        ("http://::1:80/",            "brackets"),
        ("http://:80/",               "no host"),
        ("http:///",                  "no host"),
        ("http//+:80/",               "http://"),
        ("+:80/",                     "http://"),
        ("ftp://+:80/",               "scheme 'ftp'"),
        ("://+:80/",                  "http://"),
        ("http://*:8080/a b/",        "a space"),
        ("http://+:80/a?b/",          "'?'"),
        ("http://+:80/a#b/",          "'#'"),
        ("http://+:80/a\tb/",         "control character"),
        ("http://a b:80/",            "a space"),
        ("http://*.example.com:80/",  "wildcard"),
        ("http://a+:80/",             "wildcard"),
        ("http://user@host:80/",      "user information"),
        ("http://a..b:80/",           "empty label"),
        ("http://example.com.:80/",   "empty label"),
        ("http://a<b:80/",            "not a valid"),
        ("http://1.2.3:80/",          "IPv4"),
        ("http://256.1.1.1:80/",      "IPv4"),
        ("http://+:80/../",           "above the root"),
        ("http://+:80/a%2Fb/",        "encoded '/'"),
        ("http://+:80/a%5cb/",        "encoded '/'"),
        ("http://+:80/%00/",          "NUL"),
        ("http://+:80/%zz/",          "hexadecimal"),
        ("http://+:80/%ff/",          "UTF-8"),
    ];
    for (input, fragment) in cases {
        match UrlPrefix::parse(input) {
            Ok(ok) => panic!("{input:?} parsed as {ok}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(fragment), "{input:?}: {msg:?} lacks {fragment:?}");
                assert_eq!(e.netsh_code(), 87);
                // One plain sentence: no line breaks, no trailing full stop.
                assert!(!msg.contains('\n') && !msg.ends_with('.'), "{msg:?}");
            }
        }
    }
}

#[test]
fn prefix_equality_is_case_insensitive_on_path() {
    assert_eq!(p("http://+:80/API/"), p("http://+:80/api/"));
    assert_eq!(p("http://+:80/%41pi/"), p("http://+:80/api/"));
    assert_ne!(p("http://+:80/"), p("http://*:80/"));
    assert_ne!(p("http://+:80/"), p("https://+:80/"));
    assert_ne!(p("http://+:80/"), p("http://+:81/"));
}

// ----- helpers --------------------------------------------------------

#[test]
#[rustfmt::skip]
fn host_header_splitting() {
    type Split<'a> = Option<(&'a str, Option<u16>)>;
    let cases: &[(&str, Split<'_>)] = &[
        ("example.com",      Some(("example.com", None))),
        ("example.com:8080", Some(("example.com", Some(8080)))),
        ("example.com:",     Some(("example.com", None))),
        ("[::1]:8080",       Some(("[::1]", Some(8080)))),
        ("[::1]",            Some(("[::1]", None))),
        ("[::1",             None),
        ("[::1]x",           None),
        ("::1",              None),
        ("a:99999",          None),
        ("a:x",              None),
    ];
    for (input, want) in cases {
        assert_eq!(split_host_port(input), *want, "{input}");
    }
    assert!(is_ip_literal("127.0.0.1"));
    assert!(is_ip_literal("[::1]"));
    assert!(!is_ip_literal("::1"));
    assert!(!is_ip_literal("localhost"));
}

// ----- path normalisation ----------------------------------------------

#[test]
#[rustfmt::skip]
fn normalize_paths() {
    let ok: &[(&str, &str)] = &[
        ("/",             "/"),
        ("/API/",         "/api/"),
        ("/%41pi/",       "/api/"),
        ("/%41PI/X",      "/api/x"),
        ("/a/../api/x",   "/api/x"),
        ("/a/./b",        "/a/b"),
        ("/a/b/..",       "/a/"),
        ("/a/b/.",        "/a/b/"),
        ("/a/%2e%2E/b",   "/b"),
        ("/a//b",         "/a//b"),
        ("/a//../b",      "/a/b"),
        ("\\a\\b\\",      "/a/b/"),
        ("/a\\..\\b",     "/b"),
        ("/a%20b",        "/a b"),
        ("/a%25b",        "/a%b"),
        ("/.hidden/..x",  "/.hidden/..x"),
        ("/CAF%C3%89",    "/café"),
        ("/ÄÖ",           "/äö"),
        ("/a/..",         "/"),
    ];
    for (raw, want) in ok {
        assert_eq!(normalize_path(raw).as_deref(), Ok(*want), "{raw}");
    }
    assert_eq!(normalize_path_cased("/A/./B%43").as_deref(), Ok("/A/BC"));

    // The shortcut for paths that are keys already agrees with the full
    // work, and is taken only for them.
    let plain = ["/", "/proxy/", "/a-b_c~d/x.y/z..", "/9/"];
    let not_plain = ["/./", "/a/..", "/a/.b", "/v1/.well", "/A", "/a%41", "/a\\b", "//.", "/é", "x/"];
    for raw in plain {
        assert!(matches!(normalize_path(raw), Ok(Cow::Borrowed(k)) if k == raw), "{raw}");
    }
    for raw in not_plain {
        assert!(!matches!(normalize_path(raw), Ok(Cow::Borrowed(_))), "{raw}");
        let full = normalize_path_cased(raw).map(|k| k.to_lowercase());
        assert_eq!(normalize_path(raw).map(Cow::into_owned), full, "{raw}");
    }

    let bad: &[(&str, PathError)] = &[
        ("",            PathError::NotAbsolute),
        ("api/",        PathError::NotAbsolute),
        ("/%",          PathError::InvalidEscape),
        ("/%4",         PathError::InvalidEscape),
        ("/%g0",        PathError::InvalidEscape),
        ("/%00",        PathError::EncodedNul),
        ("/a%2fb",      PathError::EncodedSeparator),
        ("/a%2Fb",      PathError::EncodedSeparator),
        ("/a%5Cb",      PathError::EncodedSeparator),
        ("/a%0ab",      PathError::ControlChar),
        ("/a%7f",       PathError::ControlChar),
        ("/a\u{1}",     PathError::ControlChar),
        ("/a%C2%85",    PathError::ControlChar),
        ("/%ff",        PathError::InvalidUtf8),
        ("/%C3",        PathError::InvalidUtf8),
        ("/..",         PathError::AboveRoot),
        ("/a/../../b",  PathError::AboveRoot),
        ("/%2e%2e/",    PathError::AboveRoot),
        ("/a b",        PathError::UnexpectedChar(' ')),
        ("/a?b",        PathError::UnexpectedChar('?')),
        ("/a#b",        PathError::UnexpectedChar('#')),
    ];
    for (raw, want) in bad {
        assert_eq!(normalize_path(raw), Err(*want), "{raw:?}");
    }
}

// ----- routing --------------------------------------------------------

/// A request: (scheme, port, host header, local ip, raw path).
type Req<'a> = (Scheme, u16, Option<&'a str>, &'a str, &'a str);

/// Expected outcome: the display of the matched prefix and the remainder,
/// or "404" / "400".
fn route(table: &PrefixTable<String>, (scheme, port, host, ip, path): Req<'_>) -> String {
    let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
    let key = normalize_path(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    match table.lookup(scheme, port, host, ip, &key) {
        Lookup::Matched {
            prefix,
            value,
            matched_len,
        } => {
            assert_eq!(value, &prefix.to_string());
            assert_eq!(prefix.strip_from(&key), key.get(matched_len..));
            format!("{prefix} {}", &key[matched_len..])
        }
        Lookup::NoPathMatch => "404".into(),
        Lookup::NoHostMatch => "400".into(),
    }
}

fn table(prefixes: &[&str]) -> PrefixTable<String> {
    let mut t = PrefixTable::new();
    for s in prefixes {
        let prefix = p(s);
        let v = prefix.to_string();
        t.insert(prefix, v).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    t
}

const H: Scheme = Scheme::Http;
const S: Scheme = Scheme::Https;

#[test]
#[rustfmt::skip]
fn precedence() {
    struct Case {
        name: &'static str,
        prefixes: &'static [&'static str],
        requests: &'static [(Req<'static>, &'static str)],
    }
    let cases = [
        Case {
            name: "whole-segment longest match",
            prefixes: &["http://+:80/", "http://+:80/dir/sna/"],
            requests: &[
                ((H, 80, Some("x"), "127.0.0.1", "/dir/sna/x"),    "http://+:80/dir/sna/ x"),
                ((H, 80, Some("x"), "127.0.0.1", "/dir/sna/"),     "http://+:80/dir/sna/ "),
                ((H, 80, Some("x"), "127.0.0.1", "/dir/snap.htm"), "http://+:80/ dir/snap.htm"),
                ((H, 80, Some("x"), "127.0.0.1", "/dir/sna"),      "http://+:80/ dir/sna"),
                ((H, 80, Some("x"), "127.0.0.1", "/DIR/SNA/Y"),    "http://+:80/dir/sna/ y"),
            ],
        },
        Case {
            name: "+ beats a longer explicit-host prefix",
            prefixes: &["http://+:80/", "http://www.example.com:80/app/deep/"],
            requests: &[
                ((H, 80, Some("www.example.com"), "127.0.0.1", "/app/deep/x"), "http://+:80/ app/deep/x"),
            ],
        },
        Case {
            name: "+ only claims its own paths; explicit gets the rest",
            prefixes: &["http://+:80/api/", "http://www.example.com:80/"],
            requests: &[
                ((H, 80, Some("www.example.com"), "127.0.0.1", "/api/v1"), "http://+:80/api/ v1"),
                ((H, 80, Some("www.example.com"), "127.0.0.1", "/other"),  "http://www.example.com:80/ other"),
                ((H, 80, Some("other.example"),   "127.0.0.1", "/other"),  "404"),
            ],
        },
        Case {
            name: "explicit beats IP-bound; IP-bound by local address",
            prefixes: &["http://site.test:80/", "http://127.0.0.1:80/", "http://127.0.0.2:80/two/"],
            requests: &[
                ((H, 80, Some("site.test"),    "127.0.0.1", "/x"),     "http://site.test:80/ x"),
                ((H, 80, Some("SITE.Test:80"), "127.0.0.2", "/two/x"), "http://site.test:80/ two/x"),
                ((H, 80, Some("other.test"),   "127.0.0.1", "/x"),     "http://127.0.0.1:80/ x"),
                ((H, 80, Some("other.test"),   "127.0.0.2", "/two/x"), "http://127.0.0.2:80/two/ x"),
                ((H, 80, Some("other.test"),   "127.0.0.2", "/x"),     "404"),
                ((H, 80, Some("other.test"),   "127.0.0.3", "/x"),     "400"),
                ((H, 80, None,                 "127.0.0.1", "/x"),     "http://127.0.0.1:80/ x"),
                ((H, 80, Some("127.0.0.1"),    "::ffff:127.0.0.1", "/x"), "http://127.0.0.1:80/ x"),
            ],
        },
        Case {
            name: "IPv6 bound prefix and bracketed Host",
            prefixes: &["http://[::1]:8080/v6/", "http://*:8080/"],
            requests: &[
                ((H, 8080, Some("[::1]:8080"), "::1",       "/v6/a"), "http://[::1]:8080/v6/ a"),
                ((H, 8080, Some("[::1]:8080"), "::1",       "/x"),    "http://*:8080/ x"),
                ((H, 8080, Some("[::1]:8080"), "127.0.0.1", "/v6/a"), "http://*:8080/ v6/a"),
            ],
        },
        Case {
            name: "an IP-literal Host never matches an explicit name",
            prefixes: &["http://localhost:80/"],
            requests: &[
                ((H, 80, Some("[::1]"),     "::1", "/"), "400"),
                ((H, 80, Some("localhost"), "::1", "/"), "http://localhost:80/ "),
                ((H, 80, None,              "::1", "/"), "400"),
            ],
        },
        Case {
            name: "weak wildcard is the last resort",
            prefixes: &["http://*:80/", "http://+:80/api/", "http://a.test:80/a/", "http://10.0.0.1:80/ip/"],
            requests: &[
                ((H, 80, Some("a.test"), "10.0.0.1", "/api/x"), "http://+:80/api/ x"),
                ((H, 80, Some("a.test"), "10.0.0.1", "/a/x"),   "http://a.test:80/a/ x"),
                ((H, 80, Some("a.test"), "10.0.0.1", "/ip/x"),  "http://10.0.0.1:80/ip/ x"),
                ((H, 80, Some("a.test"), "10.0.0.1", "/zzz"),   "http://*:80/ zzz"),
                ((H, 80, Some("b.test"), "10.0.0.2", "/zzz"),   "http://*:80/ zzz"),
                ((H, 80, None,           "10.0.0.2", "/"),      "http://*:80/ "),
            ],
        },
        Case {
            name: "case-insensitive hosts and paths, IDN Host header",
            prefixes: &["http://WWW.Example.com:80/Api/", "https://bücher.test:443/Bücher/"],
            requests: &[
                ((H, 80,  Some("www.EXAMPLE.com"),        "127.0.0.1", "/API/x"),          "http://www.example.com:80/Api/ x"),
                ((S, 443, Some("BÜCHER.test"),            "127.0.0.1", "/bÜcher/"),        "https://xn--bcher-kva.test:443/Bücher/ "),
                ((S, 443, Some("xn--bcher-kva.test:443"), "127.0.0.1", "/B%C3%BCcher/1"),  "https://xn--bcher-kva.test:443/Bücher/ 1"),
            ],
        },
        Case {
            name: "percent-encoding and dot segments",
            prefixes: &["http://+:80/api/"],
            requests: &[
                ((H, 80, Some("x"), "127.0.0.1", "/%41pi/"),     "http://+:80/api/ "),
                ((H, 80, Some("x"), "127.0.0.1", "/%61%70%69/v"), "http://+:80/api/ v"),
                ((H, 80, Some("x"), "127.0.0.1", "/a/../api/x"), "http://+:80/api/ x"),
                ((H, 80, Some("x"), "127.0.0.1", "/api/../x"),   "404"),
                ((H, 80, Some("x"), "127.0.0.1", "\\api\\x"),    "http://+:80/api/ x"),
            ],
        },
        Case {
            name: "NoHostMatch vs NoPathMatch",
            prefixes: &["http://a.test:80/only/", "http://127.0.0.5:80/ip/"],
            requests: &[
                ((H, 80, Some("a.test"), "127.0.0.1", "/only/x"), "http://a.test:80/only/ x"),
                ((H, 80, Some("a.test"), "127.0.0.1", "/"),       "404"),
                ((H, 80, Some("b.test"), "127.0.0.1", "/only/x"), "400"),
                ((H, 80, None,           "127.0.0.1", "/only/x"), "400"),
                ((H, 80, Some("b.test"), "127.0.0.5", "/x"),      "404"),
                ((H, 80, Some("a.test"), "127.0.0.5", "/ip/"),    "http://127.0.0.5:80/ip/ "),
                ((H, 81, Some("a.test"), "127.0.0.1", "/only/x"), "400"),
            ],
        },
        Case {
            name: "scheme and port isolation",
            prefixes: &["http://+:80/h80/", "https://+:443/s443/", "http://+:8080/h8080/"],
            requests: &[
                ((H, 80,   Some("x"),    "127.0.0.1", "/h80/"),   "http://+:80/h80/ "),
                ((H, 80,   Some("x"),    "127.0.0.1", "/s443/"),  "404"),
                ((S, 80,   Some("x"),    "127.0.0.1", "/h80/"),   "400"),
                ((S, 443,  Some("x"),    "127.0.0.1", "/s443/"),  "https://+:443/s443/ "),
                ((H, 443,  Some("x"),    "127.0.0.1", "/s443/"),  "400"),
                ((H, 8080, Some("x:80"), "127.0.0.1", "/h8080/"), "http://+:8080/h8080/ "),
                ((H, 8080, Some("x"),    "127.0.0.1", "/h80/"),   "404"),
            ],
        },
    ];
    for case in &cases {
        let t = table(case.prefixes);
        for (req, want) in case.requests {
            assert_eq!(route(&t, *req), *want, "{}: {req:?}", case.name);
        }
    }
}

#[test]
fn conflicts_per_category() {
    let mut t = table(&[
        "http://+:80/",
        "http://*:80/",
        "http://a.test:80/",
        "http://127.0.0.1:80/",
        "http://[::1]:80/",
        "http://+:80/api/",
    ]);
    assert_eq!(t.len(), 6);
    let dupes = [
        "http://+:80/",
        "HTTP://+:80/",
        "http://*:80/",
        "http://A.TEST:80/",
        "http://127.0.0.1:80/",
        "http://[0::1]:80/",
        "http://[::ffff:127.0.0.1]:80/",
        "http://+:80/API/",
        "http://+:80/%61pi/",
        "http://+:80/x/../api/",
    ];
    for d in dupes {
        let err = t.insert(p(d), String::new()).expect_err(d);
        assert_eq!(err.netsh_code(), 183, "{d}");
        assert!(err.to_string().contains("is already registered"), "{err}");
    }
    assert!(t.insert(p("https://+:80/"), String::new()).is_ok());
    assert!(t.insert(p("http://+:81/"), String::new()).is_ok());
    assert!(t.insert(p("http://b.test:80/"), String::new()).is_ok());
    assert!(t.insert(p("http://127.0.0.2:80/"), String::new()).is_ok());
    assert_eq!(t.len(), 10);
    let err = t
        .insert(p("http://+:80/API/"), String::new())
        .expect_err("dup");
    assert_eq!(err.existing.path(), "/api/");
}

#[test]
fn remove_then_lookup() {
    let mut t = table(&["http://+:80/api/", "http://a.test:80/", "http://*:80/"]);
    let req = (H, 80, Some("a.test"), "127.0.0.1", "/api/x");
    assert_eq!(route(&t, req), "http://+:80/api/ x");

    assert_eq!(
        t.remove(&p("http://+:80/API/")).as_deref(),
        Some("http://+:80/api/")
    );
    assert_eq!(t.remove(&p("http://+:80/api/")), None);
    assert_eq!(route(&t, req), "http://a.test:80/ api/x");

    assert!(t.remove(&p("http://a.test:80/")).is_some());
    assert_eq!(route(&t, req), "http://*:80/ api/x");

    assert!(t.remove(&p("http://*:80/")).is_some());
    assert_eq!(route(&t, req), "400");
    assert!(t.is_empty());
    assert_eq!(t.ports().count(), 0);

    // Re-register after removal works.
    t.insert(p("http://+:80/api/"), "again".into())
        .expect("reinsert");
    assert!(t.contains(&p("http://+:80/Api/")));
}

#[test]
fn iter_ports_get() {
    let mut t = table(&[
        "http://+:80/",
        "http://a.test:80/x/",
        "https://*:443/",
        "http://[::1]:8080/",
    ]);
    let mut ports: Vec<_> = t.ports().collect();
    ports.sort();
    assert_eq!(ports, vec![(H, 80), (H, 8080), (S, 443)]);
    let mut all: Vec<String> = t.iter().map(|(pfx, _)| pfx.to_string()).collect();
    all.sort();
    assert_eq!(
        all,
        vec![
            "http://+:80/",
            "http://[::1]:8080/",
            "http://a.test:80/x/",
            "https://*:443/"
        ]
    );
    assert_eq!(t.len(), 4);
    if let Some(v) = t.get_mut(&p("http://A.test:80/X/")) {
        v.push('!');
    }
    assert_eq!(
        t.get(&p("http://a.test:80/x/")).map(String::as_str),
        Some("http://a.test:80/x/!")
    );
    assert!(format!("{t:?}").contains("https://*:443/"));
}

#[test]
fn strip_from_preserves_case() {
    let prefix = p("http://+:80/Api/V1/");
    let cased = normalize_path_cased("/API/v1/Users/Me").unwrap_or_default();
    assert_eq!(prefix.strip_from(&cased), Some("Users/Me"));
    assert_eq!(prefix.strip_from("/api"), None);
    assert_eq!(p("http://+:80/").strip_from("/X"), Some("X"));
}

#[test]
fn lookup_error_status() {
    let t = table(&["http://a.test:80/x/"]);
    let key = "/y";
    assert_eq!(
        t.lookup(H, 80, Some("a.test"), LO, key).error_status(),
        Some(404)
    );
    assert_eq!(
        t.lookup(H, 80, Some("b.test"), LO, key).error_status(),
        Some(400)
    );
    assert_eq!(
        t.lookup(H, 80, Some("a.test"), LO, "/x/").error_status(),
        None
    );
}

#[test]
fn many_registrations() {
    let mut t = PrefixTable::new();
    for i in 0..2000 {
        let s = format!("http://host{i}.test:80/app{}/", i % 7);
        t.insert(p(&s), i).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(t.len(), 2000);
    let key = normalize_path("/APP3/x").unwrap_or_default();
    match t.lookup(H, 80, Some("host1053.test"), LO, &key) {
        Lookup::Matched { value, .. } => assert_eq!(*value, 1053),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        t.lookup(H, 80, Some("host1054.test"), LO, &key),
        Lookup::NoPathMatch
    );
}

#[test]
fn segments_count_the_registered_path() {
    assert_eq!(p("http://+:80/").segments(), 0);
    assert_eq!(p("http://+:80/a/").segments(), 1);
    assert_eq!(p("http://+:80/a/b/").segments(), 2);
}
