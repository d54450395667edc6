//! The daily maintenance call (cFos Personal Net's `daily_maintenance`).
//!
//! Once a day at `maintenance_time` (local time, `TZ` respected) the script
//! URL is requested from the server itself over loopback, exactly as a
//! client would, so whatever is registered for it answers: the built-in
//! site (a CGI script or a file) or an application. Each run is recorded in
//! `maintenance.log` and its result kept in the store; runs never overlap.
//!
//! The next run time is computed here ([`next_run`], with the clock passed
//! in so it can be tested for any date): a time that falls into a
//! daylight-saving gap runs at the first valid minute after it, and a time
//! that occurs twice runs once, at the first. tokio-cron-scheduler runs the
//! job; its own cron-with-time-zone mode fixes the UTC offset when the job
//! is created, which would shift the run by an hour after a DST change, so
//! each run is scheduled as a one-shot job for the computed instant.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Local, LocalResult, NaiveDateTime, NaiveTime, TimeZone};
use http_body_util::{BodyExt, Empty};
use tokio::sync::{oneshot, watch};

use crate::config::Settings;
use crate::logs::LineSink;
use crate::store::{MaintenanceRecord, Store};
use crate::urlprefix::{HostRule, Scheme};

/// Header that marks the request as the maintenance call.
pub const MAINTENANCE_HEADER: &str = "x-portshare-maintenance";
/// How much of the answer is read to find its first line.
const MAX_OUTPUT: usize = 64 * 1024;

/// The first instant after `now` at which the local clock shows `at`.
pub fn next_run<Tz: TimeZone>(at: NaiveTime, now: &DateTime<Tz>) -> DateTime<Tz> {
    let tz = now.timezone();
    let mut day = now.with_timezone(&tz).date_naive();
    // Two iterations suffice unless the zone skips whole days.
    for _ in 0..4 {
        let candidate = resolve_local(&tz, day.and_time(at));
        if candidate > *now {
            return candidate;
        }
        day = day.succ_opt().unwrap_or(day);
    }
    resolve_local(&tz, day.and_time(at))
}

/// A local wall-clock time as an instant: the earlier one when the clock
/// shows it twice; the first valid minute after it when it is skipped.
fn resolve_local<Tz: TimeZone>(tz: &Tz, local: NaiveDateTime) -> DateTime<Tz> {
    let mut t = local;
    for _ in 0..(24 * 60) {
        match tz.from_local_datetime(&t) {
            LocalResult::Single(d) => return d,
            LocalResult::Ambiguous(a, b) => return if a < b { a } else { b },
            LocalResult::None => t += chrono::Duration::minutes(1),
        }
    }
    // No valid local time within a day: fall back to reading it as UTC.
    tz.from_utc_datetime(&local)
}

/// Why a 2xx answer does not count as done, if it does not: the script printed
/// nothing, or its first line starts with `error:` or `failed:` (any case), the
/// explicit marker for "could not do my job" that `public/maintenance.cgi` uses
/// next to a non-2xx status. Other statuses are judged by the status alone.
fn reported_failure(status: u16, first_line: Option<&str>) -> Option<String> {
    if !(200..300).contains(&status) {
        return None;
    }
    let Some(line) = first_line else {
        return Some("the script printed nothing; a maintenance script says what it did".into());
    };
    let lower = line.to_ascii_lowercase();
    (lower.starts_with("error:") || lower.starts_with("failed:"))
        .then(|| "the script reported that it failed".to_owned())
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Done(MaintenanceRecord),
    /// The previous run was still going.
    Skipped,
    /// `daily_maintenance` is not set.
    NotConfigured,
}

impl RunOutcome {
    /// Text for `portshare maintenance run`.
    pub fn describe(&self) -> String {
        match self {
            RunOutcome::Done(r) => format!(
                "{} {} -> {} in {} ms: {}{}",
                r.started,
                r.url,
                r.status.map_or("no answer".to_owned(), |s| s.to_string()),
                r.duration_ms,
                r.failure
                    .as_ref()
                    .map_or(String::new(), |f| format!("FAILED ({f}): ")),
                r.summary
            ),
            RunOutcome::Skipped => "skipped: the previous maintenance run is still going".into(),
            RunOutcome::NotConfigured => {
                "daily_maintenance is not set in GLOBAL.INI; nothing to run".into()
            }
        }
    }
}

/// The text of `portshare maintenance status`. `next` is `None` when no
/// server is running (nothing is scheduled then).
pub fn status_report(settings: &Settings, next: Option<DateTime<Local>>) -> String {
    let Some(url) = &settings.daily_maintenance else {
        return "Maintenance URL : (none; set daily_maintenance in GLOBAL.INI)\n".to_owned();
    };
    let last = match Store::in_cert_dir(&settings.cert_dir).load() {
        Ok(data) => match data.maintenance {
            Some(r) => RunOutcome::Done(r).describe(),
            None => "never".to_owned(),
        },
        Err(e) => format!("unknown ({e})"),
    };
    let next = match next {
        Some(n) => n.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        None => "none: no portshare server is running".to_owned(),
    };
    format!(
        "Maintenance URL : {url}\nTime            : {} (local time)\nLast run        : {last}\nNext run        : {next}\n",
        settings.maintenance_time.format("%H:%M:%S")
    )
}

pub struct Maintenance {
    /// Swapped by a configuration reload ([`Maintenance::reconfigure`]).
    settings: arc_swap::ArcSwap<Settings>,
    /// Wakes the schedule to recompute the next run after a reload.
    reconfigured: watch::Sender<u64>,
    log: LineSink,
    running: AtomicBool,
}

impl Maintenance {
    pub fn new(settings: Arc<Settings>, log: LineSink) -> Maintenance {
        Maintenance {
            settings: arc_swap::ArcSwap::new(settings),
            reconfigured: watch::channel(0).0,
            log,
            running: AtomicBool::new(false),
        }
    }

    /// Where the call goes: loopback address, port and Host header, from the
    /// first plain-HTTP prefix of the built-in site (or `http_port`).
    fn target(&self) -> Option<(SocketAddr, String)> {
        let s = self.settings.load();
        let prefix = s.site_prefixes.iter().find(|p| p.scheme() == Scheme::Http);
        let port = prefix
            .map(|p| p.port())
            .or((s.http_port != 0).then_some(s.http_port))?;
        let mut host = "localhost".to_owned();
        let mut ip: IpAddr = if s.listen.iter().any(|a| a.is_ipv4()) {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        };
        if let Some(p) = prefix {
            match p.host() {
                HostRule::Explicit(name) => host = name.clone(),
                HostRule::IpBound(addr) => {
                    ip = *addr;
                    host = match addr {
                        IpAddr::V6(v6) => format!("[{v6}]"),
                        IpAddr::V4(v4) => v4.to_string(),
                    };
                }
                HostRule::StrongWildcard | HostRule::WeakWildcard => {}
            }
        }
        if !s.listen.iter().any(|a| a.is_unspecified() || *a == ip) {
            ip = *s.listen.first()?;
        }
        Some((SocketAddr::new(ip, port), host))
    }

    /// `portshare maintenance status`, answered by the running server.
    pub fn status(&self) -> String {
        let s = self.settings.load();
        let next = s
            .daily_maintenance
            .as_ref()
            .map(|_| next_run(s.maintenance_time, &Local::now()));
        status_report(&s, next)
    }

    /// Whether the router would serve the maintenance call: the same lookup
    /// a real run's request gets (address, Host and path).
    pub fn is_routed(&self, table: &crate::registry::RouteTable) -> bool {
        let settings = self.settings.load();
        let Some(url) = &settings.daily_maintenance else {
            return true;
        };
        let Some((local, host)) = self.target() else {
            return false;
        };
        let Ok(uri) = url.parse::<http::Uri>() else {
            return false;
        };
        let mut headers = http::HeaderMap::new();
        if let Ok(h) = http::HeaderValue::from_str(&host) {
            headers.insert(http::header::HOST, h);
        }
        let conn = crate::conn::ConnInfo::new(SocketAddr::new(local.ip(), 0), local, false);
        crate::registry::route(table, &conn, &uri, &headers).is_ok()
    }

    /// Runs the maintenance call now, unless one is already running.
    pub async fn run_now(&self) -> RunOutcome {
        let Some(url) = self.settings.load().daily_maintenance.clone() else {
            return RunOutcome::NotConfigured;
        };
        if self.running.swap(true, Ordering::AcqRel) {
            let now = Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
            self.log.send(format!(
                "{now} {url} skipped: the previous run is still going\n"
            ));
            tracing::warn!(%url, "maintenance run skipped: the previous one is still going");
            return RunOutcome::Skipped;
        }
        let started = Local::now();
        let clock = Instant::now();
        let result = self.request(&url).await;
        self.running.store(false, Ordering::Release);
        let (status, summary, failure) = match result {
            Ok((status, first_line)) => {
                let failure = reported_failure(status, first_line.as_deref());
                (
                    Some(status),
                    first_line.unwrap_or_else(|| "(no output)".to_owned()),
                    failure,
                )
            }
            Err(e) => (None, e, None),
        };
        let record = MaintenanceRecord {
            started: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            url,
            status,
            duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
            summary,
            failure,
        };
        self.log.send(format!(
            "{} {} {} {}ms {}{}\n",
            record.started,
            record.url,
            record.status.map_or("-".to_owned(), |s| s.to_string()),
            record.duration_ms,
            record
                .failure
                .as_ref()
                .map_or(String::new(), |f| format!("FAILED ({f}): ")),
            record.summary
        ));
        crate::metrics::maintenance_run(record.succeeded());
        if record.succeeded() {
            tracing::info!(url = %record.url, status = ?record.status, "maintenance run finished")
        } else {
            tracing::warn!(
                url = %record.url,
                summary = %record.summary,
                failure = ?record.failure,
                "maintenance run failed"
            )
        }
        let store = Store::in_cert_dir(&self.settings.load().cert_dir);
        let saved = record.clone();
        if let Err(e) = store.update(move |d| {
            d.maintenance = Some(saved);
            Ok::<(), std::convert::Infallible>(())
        }) {
            tracing::warn!(error = %e, "could not keep the maintenance result in the store");
        }
        RunOutcome::Done(record)
    }

    /// One GET through the server's own listener; returns status and the
    /// first non-empty line of the body (`None`: no output).
    async fn request(&self, url: &str) -> Result<(u16, Option<String>), String> {
        let (addr, host) = self
            .target()
            .ok_or("no plain-HTTP port to call the maintenance URL on (set http_port)")?;
        let timeout = self.settings.load().cgi.timeout + Duration::from_secs(5);
        let call = async {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("HTTP handshake with {addr} failed: {e}"))?;
            tokio::spawn(conn);
            let req = http::Request::get(url)
                .header(http::header::HOST, host)
                .header(MAINTENANCE_HEADER, "daily")
                .header(
                    http::header::USER_AGENT,
                    concat!("portshare-maintenance/", env!("CARGO_PKG_VERSION")),
                )
                .body(Empty::<Bytes>::new())
                .map_err(|e| format!("bad maintenance URL {url}: {e}"))?;
            let res = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = res.status().as_u16();
            let mut body = res.into_body();
            let mut out = Vec::new();
            while out.len() < MAX_OUTPUT {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            out.extend_from_slice(d);
                        }
                    }
                    Some(Err(e)) => return Err(format!("the answer broke off: {e}")),
                    None => break,
                }
            }
            let text = String::from_utf8_lossy(&out);
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(|l| l.chars().take(200).collect::<String>());
            Ok((status, first))
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
    }

    /// Puts reloaded settings in force: the URL and time of the daily
    /// call (the schedule recomputes its next run at once).
    pub fn reconfigure(&self, settings: Arc<Settings>) {
        self.settings.store(settings);
        self.reconfigured.send_modify(|n| *n += 1);
    }

    /// Runs the daily schedule until `stop` changes. With no
    /// `daily_maintenance` it waits for a reload that sets one.
    pub async fn schedule(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut reconfigured = self.reconfigured.subscribe();
        let scheduler = match tokio_cron_scheduler::JobScheduler::new().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "the maintenance scheduler could not start");
                return;
            }
        };
        if let Err(e) = scheduler.start().await {
            tracing::error!(error = %e, "the maintenance scheduler could not start");
            return;
        }
        // The scheduler may fire a little early (it counts whole seconds);
        // counting from the last target keeps that from running twice.
        let mut last_target: Option<DateTime<Local>> = None;
        loop {
            let settings = self.settings.load_full();
            if settings.daily_maintenance.is_none() {
                tokio::select! {
                    _ = stop.changed() => break,
                    Ok(()) = reconfigured.changed() => continue,
                }
            }
            let at = settings.maintenance_time;
            let now = Local::now();
            let base = match last_target {
                Some(t) if t > now => t,
                _ => now,
            };
            let next = next_run(at, &base);
            last_target = Some(next);
            let wait = (next - now).to_std().unwrap_or_default();
            tracing::info!(next = %next.to_rfc3339(), "next maintenance run");
            let (tx, rx) = oneshot::channel::<()>();
            let tx = Mutex::new(Some(tx));
            let job = tokio_cron_scheduler::Job::new_one_shot_async(wait, move |_, _| {
                if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(());
                }
                Box::pin(async {})
            });
            let added = match job {
                Ok(job) => scheduler.add(job).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = added {
                tracing::error!(error = %e, "could not schedule the maintenance run");
                return;
            }
            tokio::select! {
                _ = stop.changed() => break,
                // A reload: the time may have changed. The job already
                // scheduled fires into a dropped channel, harmlessly.
                Ok(()) = reconfigured.changed() => {
                    last_target = None;
                }
                fired = rx => {
                    if fired.is_err() { break; }
                    if let Ok(early) = (next - Local::now()).to_std() {
                        tokio::time::sleep(early).await;
                    }
                    let me = self.clone();
                    // Runs in its own task so a hanging script can't delay
                    // scheduling; overlap is prevented by `running`.
                    tokio::spawn(async move { me.run_now().await });
                }
            }
        }
        let mut scheduler = scheduler;
        let _ = scheduler.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, Utc};
    use chrono_tz::Europe::Berlin;

    fn t(h: u32, m: u32, s: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, s).unwrap()
    }

    fn berlin(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<chrono_tz::Tz> {
        Berlin
            .from_local_datetime(
                &NaiveDate::from_ymd_opt(y, mo, d)
                    .unwrap()
                    .and_hms_opt(h, mi, 0)
                    .unwrap(),
            )
            .earliest()
            .unwrap()
    }

    #[test]
    fn later_today_or_tomorrow() {
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
        assert_eq!(
            next_run(t(12, 0, 0), &now),
            Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
        );
        assert_eq!(
            next_run(t(3, 0, 0), &now),
            Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap()
        );
        // Exactly now: the next day's run.
        assert_eq!(
            next_run(t(10, 0, 0), &now),
            Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
        );
        // Across midnight and year end.
        let late = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(
            next_run(t(0, 0, 0), &late),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn spring_forward_gap_runs_once_after_the_gap() {
        // 2026-03-29 in Berlin: 02:00 → 03:00.
        let before = berlin(2026, 3, 29, 1, 0);
        let run = next_run(t(2, 30, 0), &before);
        assert_eq!(
            run.naive_local(),
            NaiveDate::from_ymd_opt(2026, 3, 29)
                .unwrap()
                .and_hms_opt(3, 0, 0)
                .unwrap()
        );
        // The day after is normal again, and that day isn't skipped.
        let after = next_run(t(2, 30, 0), &run);
        assert_eq!(
            after.naive_local(),
            NaiveDate::from_ymd_opt(2026, 3, 30)
                .unwrap()
                .and_hms_opt(2, 30, 0)
                .unwrap()
        );
    }

    #[test]
    fn fall_back_runs_once_not_twice() {
        // 2026-10-25 in Berlin: 03:00 → 02:00, so 02:30 happens twice.
        let before = berlin(2026, 10, 25, 1, 0);
        let first = next_run(t(2, 30, 0), &before);
        assert_eq!(
            first.naive_local(),
            NaiveDate::from_ymd_opt(2026, 10, 25)
                .unwrap()
                .and_hms_opt(2, 30, 0)
                .unwrap()
        );
        // After the first run, the next is the following day, not the
        // second 02:30 an hour later.
        let second = next_run(t(2, 30, 0), &first);
        assert_eq!(
            second.naive_local(),
            NaiveDate::from_ymd_opt(2026, 10, 26)
                .unwrap()
                .and_hms_opt(2, 30, 0)
                .unwrap()
        );
        assert!(second - first > chrono::Duration::hours(23));
    }

    #[test]
    fn a_day_is_never_skipped_across_dst() {
        // Walk a whole year of daily runs at 02:30 Berlin time.
        let mut now = berlin(2026, 1, 1, 0, 0);
        let mut days = std::collections::BTreeSet::new();
        for _ in 0..365 {
            now = next_run(t(2, 30, 0), &now);
            assert!(
                days.insert(now.date_naive()),
                "two runs on {}",
                now.date_naive()
            );
        }
        assert_eq!(days.len(), 365);
    }
}
