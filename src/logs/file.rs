//! One log file in `log_dir` that rolls over: at local midnight and, when a
//! size limit is set, before a line would take it past the limit. The live
//! file keeps its name (`access.log`, `httperr.log`), so `tail -F`, log
//! shippers and the maintenance script always find it; a full file is
//! renamed with HTTP.sys's naming for its error logs, the next sequence
//! number after the stem (`httperr1.log`, `httperr2.log`, …; likewise
//! `access1.log`, …), the highest number the newest. Rolled-over files older
//! than `log_keep_days` are deleted at each rollover and each midnight.
//!
//! Only the log's writer thread touches the file, and it rolls over between
//! two lines: a line is never split across files, and none is lost.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Local, NaiveDate, TimeDelta, Utc};

/// The time as the writer sees it; the tests move it forward instead of
/// waiting for midnight.
pub(crate) type Clock = Arc<dyn Fn() -> DateTime<Local> + Send + Sync>;

/// The real clock.
pub(crate) fn system_clock() -> Clock {
    Arc::new(Local::now)
}

/// A file's header (the httperr log's `#Software:` lines), given the time.
pub(crate) type Header = fn(DateTime<Utc>) -> String;

/// When a file rolls over and how long its rolled-over files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes a file may reach; 0: no limit (it still rolls over at midnight).
    pub max_size: u64,
    /// Days a rolled-over file is kept after its last line; 0: for ever.
    pub keep_days: u32,
}

/// How long a failed rename (Windows refuses it while another program has
/// the file open) waits before it is tried again; lines go on being
/// appended to the live file meanwhile.
const RETRY_ROLLOVER: TimeDelta = TimeDelta::seconds(60);

pub(crate) struct LogFile {
    dir: PathBuf,
    stem: &'static str,
    header: Option<Header>,
    /// `None`: the file never rolls over (maintenance.log: a line a day).
    rotation: Option<Rotation>,
    clock: Clock,
    /// `None` after the file could not be opened again; the next line retries.
    out: Option<BufWriter<File>>,
    /// Bytes in the file, counting those still in `out`'s buffer.
    size: u64,
    /// The header's length: a file no longer than that holds no lines.
    header_len: u64,
    /// The local day the file's lines belong to.
    day: NaiveDate,
    /// The lowest number a rolled-over file may take; found by looking at
    /// the folder on the first rollover.
    next_number: Option<u64>,
    retry_after: Option<DateTime<Local>>,
}

impl LogFile {
    /// Opens (or creates) `dir/stem.log` for appending.
    pub(crate) fn open(
        dir: &Path,
        stem: &'static str,
        header: Option<Header>,
        rotation: Option<Rotation>,
        clock: Clock,
    ) -> io::Result<LogFile> {
        let today = clock().date_naive();
        let mut file = LogFile {
            dir: dir.to_owned(),
            stem,
            header,
            rotation,
            clock,
            out: None,
            size: 0,
            header_len: 0,
            day: today,
            next_number: None,
            retry_after: None,
        };
        file.open_live()?;
        Ok(file)
    }

    /// `dir/stem.log`, the file lines go to.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.stem))
    }

    /// `dir/stemN.log`, a rolled-over file.
    fn numbered(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{}{n}.log", self.stem))
    }

    fn open_live(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path();
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let meta = file.metadata()?;
        let now = (self.clock)();
        // The header's length does not depend on the time it shows.
        self.header_len = self
            .header
            .map_or(0, |h| h(now.with_timezone(&Utc)).len() as u64);
        self.size = meta.len();
        if self.size == 0 {
            if let Some(header) = self.header {
                let text = header(now.with_timezone(&Utc));
                file.write_all(text.as_bytes())?;
                self.size = text.len() as u64;
            }
        }
        // A file left from an earlier day (the server was stopped over
        // midnight) belongs to the day it was last written: the first
        // `tick` rolls it over.
        self.day = match meta.modified() {
            Ok(m) if self.size > self.header_len => DateTime::<Local>::from(m).date_naive(),
            _ => now.date_naive(),
        };
        self.out = Some(BufWriter::with_capacity(64 * 1024, file));
        Ok(())
    }

    /// Appends one whole line, rolling the file over first if the line would
    /// take it past the size limit.
    pub(crate) fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if let Some(r) = self.rotation {
            let len = line.len() as u64;
            if r.max_size > 0
                && self.size > self.header_len
                && self.size.saturating_add(len) > r.max_size
                && self.may_retry()
            {
                self.roll_over("size limit");
            }
        }
        if self.out.is_none() {
            self.open_live()?;
        }
        match self.out.as_mut() {
            Some(out) => {
                out.write_all(line)?;
                self.size += line.len() as u64;
                Ok(())
            }
            None => Err(io::Error::other("the log file is not open")),
        }
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    /// Called between batches: rolls the file over when the local day has
    /// changed since its first line, and deletes what has grown too old.
    pub(crate) fn tick(&mut self) {
        if self.rotation.is_none() {
            return;
        }
        let today = (self.clock)().date_naive();
        if today == self.day {
            return;
        }
        if self.size > self.header_len {
            if self.may_retry() {
                self.roll_over("new day");
            }
        } else {
            // Nothing was logged that day: no empty file to keep.
            self.day = today;
            self.prune();
        }
    }

    /// Closes and opens the file again by its name: an external logrotate
    /// has renamed it (`SIGUSR1`).
    pub(crate) fn reopen(&mut self) -> io::Result<()> {
        if let Some(mut out) = self.out.take() {
            out.flush()?;
        }
        self.open_live()
    }

    fn may_retry(&self) -> bool {
        self.retry_after.is_none_or(|t| (self.clock)() >= t)
    }

    /// Renames the live file to the next `stemN.log` and starts a new one.
    /// Failures are logged, not returned: lines then go on into the live
    /// file (or the next line opens it again), which is better than none.
    fn roll_over(&mut self, why: &str) {
        if let Some(mut out) = self.out.take() {
            if let Err(e) = out.flush() {
                tracing::warn!(file = %self.path().display(), error = %e, "writing a log file before its rollover failed");
            }
        }
        let renamed = self.next_free_number().and_then(|n| {
            let to = self.numbered(n);
            std::fs::rename(self.path(), &to)?;
            self.next_number = Some(n + 1);
            Ok(to)
        });
        match renamed {
            Ok(to) => {
                self.retry_after = None;
                tracing::debug!(file = %to.display(), why, "log file rolled over");
            }
            // Someone else moved it first (an external logrotate between
            // its rename and its SIGUSR1): the lines are in their file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.retry_after = None;
                tracing::debug!(file = %self.path().display(), "log file already moved away at its rollover");
            }
            Err(e) => {
                self.retry_after = Some((self.clock)() + RETRY_ROLLOVER);
                tracing::warn!(file = %self.path().display(), error = %e, "cannot roll the log file over; lines go on into it, the rollover is tried again in a minute");
            }
        }
        if let Err(e) = self.open_live() {
            tracing::error!(file = %self.path().display(), error = %e, "cannot open the log file after its rollover; the next line tries again");
        }
        // open_live dates a file it has just renamed away by its content.
        self.day = (self.clock)().date_naive();
        self.prune();
    }

    /// The number after the highest `stemN.log` in the folder, not taken.
    fn next_free_number(&mut self) -> io::Result<u64> {
        let mut n = match self.next_number {
            Some(n) => n,
            None => {
                let mut highest = 0;
                for entry in std::fs::read_dir(&self.dir)? {
                    let entry = entry?;
                    if let Some(k) = self.number_of(&entry.file_name()) {
                        highest = highest.max(k);
                    }
                }
                highest + 1
            }
        };
        // Another program may have made one meanwhile: rename would replace it.
        while self.numbered(n).exists() {
            n += 1;
        }
        Ok(n)
    }

    /// `N` when `name` is `stemN.log`.
    fn number_of(&self, name: &std::ffi::OsStr) -> Option<u64> {
        let digits = name
            .to_str()?
            .strip_prefix(self.stem)?
            .strip_suffix(".log")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Deletes the rolled-over files last written more than `keep_days` ago.
    /// Only `stemN.log` names are touched: the live file, files renamed by
    /// an external logrotate and anything else in the folder stay.
    fn prune(&self) {
        let Some(keep_days) = self.rotation.map(|r| r.keep_days).filter(|d| *d > 0) else {
            return;
        };
        let cutoff: std::time::SystemTime =
            ((self.clock)() - TimeDelta::days(i64::from(keep_days))).into();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot list the log folder to delete old logs");
                return;
            }
        };
        for entry in entries.flatten() {
            if self.number_of(&entry.file_name()).is_none() {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m < cutoff);
            if old {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(file = %entry.path().display(), keep_days, "old log file deleted")
                    }
                    Err(e) => {
                        tracing::warn!(file = %entry.path().display(), error = %e, "cannot delete an old log file")
                    }
                }
            }
        }
    }
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A clock the test moves by hand.
    fn manual_clock(start: DateTime<Local>) -> (Clock, Arc<Mutex<DateTime<Local>>>) {
        let now = Arc::new(Mutex::new(start));
        let read = now.clone();
        (
            Arc::new(move || *read.lock().unwrap_or_else(|p| p.into_inner())),
            now,
        )
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn size_limit_rolls_over_between_whole_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rotation = Rotation {
            max_size: 25,
            keep_days: 0,
        };
        let mut f = LogFile::open(dir.path(), "access", None, Some(rotation), system_clock())
            .expect("open");
        for i in 0..10 {
            f.write_line(format!("line {i:02}\n").as_bytes())
                .expect("write");
        }
        f.flush().expect("flush");
        // 8 bytes a line, at most 25 a file: three lines each.
        assert_eq!(
            names(dir.path()),
            ["access.log", "access1.log", "access2.log", "access3.log"]
        );
        assert_eq!(
            read(dir.path().join("access1.log")),
            "line 00\nline 01\nline 02\n"
        );
        assert_eq!(
            read(dir.path().join("access3.log")),
            "line 06\nline 07\nline 08\n"
        );
        assert_eq!(read(dir.path().join("access.log")), "line 09\n");
        // A line longer than the limit still goes into one file, whole.
        let long = format!("{}\n", "x".repeat(40));
        f.write_line(long.as_bytes()).expect("write");
        f.flush().expect("flush");
        assert_eq!(read(dir.path().join("access.log")), long);
        assert_eq!(read(dir.path().join("access4.log")), "line 09\n");
    }

    #[test]
    fn numbering_goes_on_after_the_highest_and_skips_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "httperr7.log",
            "httperr.log.1",
            "httperrx.log",
            "access9.log",
        ] {
            std::fs::write(dir.path().join(name), "old\n").expect("write");
        }
        let header: Header = |_| "#H\n".to_owned();
        let rotation = Rotation {
            max_size: 10,
            keep_days: 0,
        };
        let mut f = LogFile::open(
            dir.path(),
            "httperr",
            Some(header),
            Some(rotation),
            system_clock(),
        )
        .expect("open");
        // The header is written once per file and a header-only file is
        // never rolled over.
        f.write_line(b"0123456789\n").expect("write");
        f.write_line(b"abc\n").expect("write");
        f.flush().expect("flush");
        assert_eq!(read(dir.path().join("httperr8.log")), "#H\n0123456789\n");
        assert_eq!(read(dir.path().join("httperr.log")), "#H\nabc\n");
        assert_eq!(read(dir.path().join("httperr7.log")), "old\n");
    }

    /// Sets a file's modification time, which `prune` goes by.
    fn touch(path: PathBuf, at: DateTime<Local>) {
        let f = OpenOptions::new().append(true).open(&path).expect("open");
        f.set_modified(at.into()).expect("set_modified");
    }

    #[test]
    fn midnight_rolls_over_and_old_files_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Day 5 is today: the files' real times are then "now" to the clock.
        let start = Local::now() - TimeDelta::days(5);
        let (clock, now) = manual_clock(start);
        let set_day = |d: i64| *now.lock().expect("clock") = start + TimeDelta::days(d);
        let rotation = Rotation {
            max_size: 0,
            keep_days: 3,
        };
        let mut f = LogFile::open(dir.path(), "access", None, Some(rotation), clock).expect("open");
        f.write_line(b"day 0\n").expect("write");
        f.tick();
        assert_eq!(names(dir.path()), ["access.log"]);
        // The next day: the first tick rolls the file over.
        set_day(1);
        f.tick();
        f.write_line(b"day 1\n").expect("write");
        set_day(2);
        f.tick();
        f.flush().expect("flush");
        assert_eq!(read(dir.path().join("access1.log")), "day 0\n");
        assert_eq!(read(dir.path().join("access2.log")), "day 1\n");
        touch(dir.path().join("access1.log"), start);
        touch(dir.path().join("access2.log"), start + TimeDelta::days(2));
        // A day with no line leaves no empty file behind.
        set_day(3);
        f.tick();
        assert_eq!(
            names(dir.path()),
            ["access.log", "access1.log", "access2.log"]
        );
        assert_eq!(read(dir.path().join("access.log")), "");
        // Files last written more than keep_days ago go at the next
        // midnight; the live file and other names stay.
        std::fs::write(dir.path().join("access.log.1"), "logrotate's\n").expect("write");
        touch(dir.path().join("access.log.1"), start);
        set_day(5);
        f.tick();
        assert_eq!(
            names(dir.path()),
            ["access.log", "access.log.1", "access2.log"],
            "access1.log (last written on day 0) is older than 3 days"
        );
    }

    #[test]
    fn a_file_from_an_earlier_day_rolls_over_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("access.log"), "yesterday\n").expect("write");
        let (clock, _) = manual_clock(Local::now() + TimeDelta::days(1));
        let rotation = Rotation {
            max_size: 0,
            keep_days: 0,
        };
        let mut f = LogFile::open(dir.path(), "access", None, Some(rotation), clock).expect("open");
        f.tick();
        f.write_line(b"today\n").expect("write");
        f.flush().expect("flush");
        assert_eq!(read(dir.path().join("access1.log")), "yesterday\n");
        assert_eq!(read(dir.path().join("access.log")), "today\n");
    }

    #[test]
    fn reopen_follows_an_external_rename() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = LogFile::open(dir.path(), "access", None, None, system_clock()).expect("open");
        f.write_line(b"before\n").expect("write");
        f.flush().expect("flush");
        std::fs::rename(
            dir.path().join("access.log"),
            dir.path().join("access.log.1"),
        )
        .expect("rename");
        // Until the reopen, lines go on into the renamed file.
        f.write_line(b"still old\n").expect("write");
        f.reopen().expect("reopen");
        f.write_line(b"after\n").expect("write");
        f.flush().expect("flush");
        assert_eq!(read(dir.path().join("access.log.1")), "before\nstill old\n");
        assert_eq!(read(dir.path().join("access.log")), "after\n");
    }
}
