//! netsh itself: its command line, scripts and the interactive shell, for the
//! binary invoked as `netsh` (`netsh.exe`, any path).
//!
//! - `netsh` alone reads commands from standard input, one a line (a
//!   terminal gets the `netsh>` prompt); `netsh -c http` does the same in the
//!   `http` context.
//! - `netsh [-c CONTEXT] COMMAND…` runs one command; a bare context
//!   (`netsh http`) enters it and reads standard input as above.
//! - `netsh -f FILE` and the command `exec FILE` run a script.
//!
//! Lines: `#` comments and blank lines are skipped; `http` enters the http
//! context, `..` goes up, `pushd [COMMAND]` saves the context (then runs
//! COMMAND), `popd` returns to the saved one, `exit`/`quit`/`bye` end,
//! `?`/`help` list the context's commands. Double quotes group a value with
//! spaces (`user="NT AUTHORITY\NETWORK SERVICE"`) and are removed.
//!
//! As netsh, a failing line does not stop a script; the exit code is 0 when
//! every command succeeded, otherwise the error number of the last one that
//! failed.

use std::io::{BufRead, Write};
use std::path::Path;

use super::{Failure, NetshOutput};
use crate::winerror::{
    ERROR_ACCESS_DENIED, ERROR_FILE_NOT_FOUND, ERROR_GEN_FAILURE, ERROR_INVALID_PARAMETER,
    ERROR_NOT_SUPPORTED,
};

/// The contexts below the root.
const CONTEXTS: &[&str] = &["http"];

/// Scripts that `exec` each other deeper than this are taken for a loop.
const MAX_DEPTH: usize = 16;

const ROOT_HELP: &str = "
The following commands are available:

Commands in this context:
..             - Goes up one context level.
?              - Displays a list of commands.
bye            - Exits the program.
dump           - Displays a configuration script.
exec           - Runs a script file.
exit           - Exits the program.
help           - Displays a list of commands.
http           - Changes to the `netsh http' context.
popd           - Pops a context from the stack.
pushd          - Pushes current context on stack.
quit           - Exits the program.

The following sub-contexts are available:
 http

To view help for a command, type the command, followed by a space, and then
 type ?.

";

/// Whether the program was started under the name `netsh` (argv[0]'s file
/// stem, case-insensitive: `netsh`, `/usr/local/bin/netsh`, `NETSH.EXE`).
pub fn invoked_as_netsh(argv0: &std::ffi::OsStr) -> bool {
    Path::new(argv0)
        .file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s.eq_ignore_ascii_case("netsh"))
}

/// What a line did to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Done,
    /// It only changed the context (`http`, `..`).
    Entered,
    /// `exit`, `quit`, `bye`.
    Exit,
}

/// One netsh session: the current context, the `pushd` stack and the last
/// error. `exec` runs a full command (`["http", "show", "urlacl"]`).
struct Session<'o, F> {
    exec: F,
    out: &'o mut dyn Write,
    context: Vec<String>,
    stack: Vec<Vec<String>>,
    last_error: i32,
    depth: usize,
}

impl<F: FnMut(&[String]) -> NetshOutput> Session<'_, F> {
    fn print(&mut self, text: &str) {
        // A closed stdout (`netsh … | head`) must not stop the commands.
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    fn report(&mut self, out: NetshOutput) {
        self.print(&out.stdout);
        if out.exit_code != 0 {
            self.last_error = out.exit_code;
        }
    }

    fn fail(&mut self, failure: Failure) {
        let out = failure.render(None);
        self.report(out);
    }

    fn line(&mut self, text: &str) -> Step {
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() || text.starts_with('#') {
            return Step::Done;
        }
        self.words(&tokenize(text))
    }

    fn words(&mut self, words: &[String]) -> Step {
        let Some(first) = words.first() else {
            return Step::Done;
        };
        let head = first.to_ascii_lowercase();
        match head.as_str() {
            "exit" | "quit" | "bye" => Step::Exit,
            ".." => {
                self.context.pop();
                Step::Entered
            }
            "pushd" => {
                self.stack.push(self.context.clone());
                self.words(&words[1..])
            }
            "popd" => {
                if let Some(saved) = self.stack.pop() {
                    self.context = saved;
                }
                Step::Done
            }
            "exec" => match &words[1..] {
                [file] => self.file(Path::new(file)),
                _ => {
                    self.fail(Failure::param(
                        "give exactly one script file, e.g. exec script.txt (quote a name with spaces).",
                        "Usage: exec SCRIPTFILE",
                    ));
                    Step::Done
                }
            },
            "?" | "help" | "/?" | "-?" if words.len() == 1 => {
                let text = match self.context.first() {
                    None => ROOT_HELP.to_owned(),
                    Some(c) => super::help(std::slice::from_ref(c))
                        .map(|o| o.stdout)
                        .unwrap_or_default(),
                };
                self.print(&text);
                Step::Done
            }
            _ => {
                // A context name starts from the root (`http show urlacl`
                // works inside `netsh http>` too); anything else is a command
                // of the current context.
                let full: Vec<String> = if CONTEXTS.contains(&head.as_str()) {
                    words.to_vec()
                } else if head == "dump" && self.context.is_empty() {
                    // The root's dump is that of every context: here, http.
                    vec!["http".to_owned(), "dump".to_owned()]
                } else {
                    self.context.iter().chain(words).cloned().collect()
                };
                if let [only] = full.as_slice() {
                    let lower = only.to_ascii_lowercase();
                    if CONTEXTS.contains(&lower.as_str()) {
                        self.context = vec![lower];
                        return Step::Entered;
                    }
                }
                let out = (self.exec)(&full);
                self.report(out);
                Step::Done
            }
        }
    }

    /// Runs a script file; the caller's context is kept (a script's
    /// `pushd http` without `popd` does not leak out).
    fn file(&mut self, path: &Path) -> Step {
        if self.depth >= MAX_DEPTH {
            self.fail(Failure::new(
                ERROR_INVALID_PARAMETER,
                format!(
                    "{} is run through more than {MAX_DEPTH} nested 'exec' commands; a script probably runs itself.",
                    path.display()
                ),
            ));
            return Step::Done;
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                let code = match e.kind() {
                    std::io::ErrorKind::NotFound => ERROR_FILE_NOT_FOUND,
                    std::io::ErrorKind::PermissionDenied => ERROR_ACCESS_DENIED,
                    _ => ERROR_GEN_FAILURE,
                };
                self.fail(Failure::new(
                    code,
                    format!(
                        "cannot read the script {}: {e}; check the file name (relative names start from the current directory).",
                        path.display()
                    ),
                ));
                return Step::Done;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let saved = (self.context.clone(), self.stack.clone());
        self.depth += 1;
        let mut step = Step::Done;
        for line in text.lines() {
            if self.line(line) == Step::Exit {
                step = Step::Exit;
                break;
            }
        }
        self.depth -= 1;
        (self.context, self.stack) = saved;
        step
    }

    /// Reads commands from `input` until its end or `exit`.
    fn read(&mut self, input: &mut dyn BufRead, interactive: bool) {
        let mut buf = Vec::new();
        loop {
            if interactive {
                let prompt: String = self.context.iter().map(|c| format!(" {c}")).collect();
                self.print(&format!("netsh{prompt}>"));
            }
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    self.fail(Failure::new(
                        ERROR_GEN_FAILURE,
                        format!("cannot read standard input: {e}."),
                    ));
                    break;
                }
            }
            let line = String::from_utf8_lossy(&buf).into_owned();
            if self.line(&line) == Step::Exit {
                return;
            }
        }
        if interactive {
            // End of input (Ctrl-D) leaves the prompt's line open.
            self.print("\n");
        }
    }
}

/// Splits a line into words at whitespace; double quotes group and are
/// removed (`user="A B"` is the word `user=A B`).
fn tokenize(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// netsh's command line (`args` without the program name). `exec` runs one
/// full command; `input` is standard input, `interactive` whether it is a
/// terminal (then the prompt is shown). Returns the exit code.
pub fn main<F>(
    args: &[String],
    exec: F,
    out: &mut dyn Write,
    input: &mut dyn BufRead,
    interactive: bool,
) -> i32
where
    F: FnMut(&[String]) -> NetshOutput,
{
    let mut session = Session {
        exec,
        out,
        context: Vec::new(),
        stack: Vec::new(),
        last_error: 0,
        depth: 0,
    };
    let mut script = None;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let option = arg.to_ascii_lowercase();
        let option = option
            .strip_prefix('-')
            .or_else(|| option.strip_prefix('/'));
        let value = args.get(i + 1);
        match (option, value) {
            (Some("c"), Some(context)) => {
                if session.words(std::slice::from_ref(context)) != Step::Entered {
                    // Not a context: netsh's "not found" was printed.
                    return session.last_error;
                }
            }
            (Some("f"), Some(file)) => script = Some(file.clone()),
            (Some("a" | "r" | "u" | "p"), Some(_)) => {
                session.fail(Failure::new(
                    ERROR_NOT_SUPPORTED,
                    format!(
                        "netsh option {arg} (alias file, remote machine, user, password) is not supported; run the command on the machine itself."
                    ),
                ));
                return session.last_error;
            }
            (Some("c" | "f" | "a" | "r" | "u" | "p"), None) => {
                session.fail(Failure::param(
                    format!("{arg} needs a value after it."),
                    "Usage: netsh [-c CONTEXT] [COMMAND | -f SCRIPTFILE]",
                ));
                return session.last_error;
            }
            _ => break,
        }
        i += 2;
    }
    if let Some(file) = script {
        session.file(Path::new(&file));
        return session.last_error;
    }
    let rest = &args[i..];
    if rest.is_empty() || session.words(rest) == Step::Entered {
        session.read(input, interactive);
    }
    session.last_error
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `main` with a fake command runner that records each command and
    /// fails those containing `bad` with error 87.
    fn run(args: &[&str], input: &str) -> (String, i32, Vec<String>) {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let mut seen = Vec::new();
        let mut out = Vec::new();
        let code = main(
            &args,
            |words: &[String]| {
                let line = words.join(" ");
                seen.push(line.clone());
                NetshOutput {
                    stdout: format!("[{line}]\n"),
                    exit_code: if line.contains("bad") { 87 } else { 0 },
                }
            },
            &mut out,
            &mut input.as_bytes(),
            false,
        );
        (String::from_utf8_lossy(&out).into_owned(), code, seen)
    }

    #[test]
    fn argv0_names_netsh_case_insensitively() {
        for name in ["netsh", "/usr/bin/netsh", "NETSH.EXE", "netsh.exe"] {
            assert!(invoked_as_netsh(std::ffi::OsStr::new(name)), "{name}");
        }
        for name in ["portshare", "netshx", "/netsh/portshare"] {
            assert!(!invoked_as_netsh(std::ffi::OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn piped_lines_run_in_their_context() {
        let input =
            "http show urlacl\r\n\n# comment\nhttp\nshow sslcert x=\"a b\"\n..\nshow urlacl\n";
        let (_, code, seen) = run(&[], input);
        assert_eq!(
            seen,
            ["http show urlacl", "http show sslcert x=a b", "show urlacl"]
        );
        assert_eq!(code, 0);
    }

    #[test]
    fn c_option_and_one_command() {
        let (_, code, seen) = run(&["-c", "http", "show", "urlacl"], "");
        assert_eq!((seen, code), (vec!["http show urlacl".to_owned()], 0));
        // A bare context reads standard input in it.
        let (_, _, seen) = run(&["http"], "show timeout\nexit\nshow never\n");
        assert_eq!(seen, ["http show timeout"]);
        let (_, code, seen) = run(&["http", "bad", "verb"], "");
        assert_eq!((seen, code), (vec!["http bad verb".to_owned()], 87));
    }

    #[test]
    fn scripts_go_on_after_a_failure_and_report_the_last_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("s.txt");
        std::fs::write(&file, "pushd http\nshow bad\npopd\nhttp show urlacl\n").expect("write");
        let file = file.to_string_lossy().into_owned();
        for args in [vec!["-f", file.as_str()], vec!["exec", file.as_str()]] {
            let (_, code, seen) = run(&args, "");
            assert_eq!(seen, ["http show bad", "http show urlacl"], "{args:?}");
            assert_eq!(code, 87, "{args:?}");
        }
        let (out, code, seen) = run(&["exec", "/nonexistent/script.txt"], "");
        assert_eq!((code, seen.len()), (2, 0));
        assert!(
            out.starts_with("\nError: 2\nThe system cannot find the file specified.\nportshare: cannot read the script /nonexistent/script.txt:"),
            "{out}"
        );
    }

    #[test]
    fn help_and_unsupported_options() {
        let (out, code, _) = run(&[], "?\n");
        assert_eq!(code, 0);
        assert!(out.contains("http           - Changes to the `netsh http' context."));
        let (out, _, _) = run(&["-c", "http"], "help\n");
        assert!(out.contains("show sslcert"), "{out}");
        let (out, code, _) = run(&["-r", "host", "http", "show", "urlacl"], "");
        assert_eq!(code, 50, "{out}");
        let (_, code, seen) = run(&["-c", "frob"], "");
        assert_eq!((code, seen), (0, vec!["frob".to_owned()]));
    }

    #[test]
    fn tokenize_groups_quotes() {
        assert_eq!(
            tokenize(r#"add urlacl url=http://+:80/ user="NT AUTHORITY\NETWORK SERVICE" x="""#),
            [
                "add",
                "urlacl",
                "url=http://+:80/",
                r"user=NT AUTHORITY\NETWORK SERVICE",
                "x="
            ]
        );
    }
}
