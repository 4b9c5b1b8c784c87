//! The real `forge` binary, as the command-line and operator tests run it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};

/// `forge` with none of the test process's `FORGE_*` (or `RUST_LOG`)
/// variables: the test environment must not leak into the child's
/// configuration. `FORGE_TEST_BINARY` names another build to run (CI runs
/// the relying-party suite against the static release binary this way);
/// by default it is the one Cargo built for these tests.
pub fn forge() -> Command {
    let binary = std::env::var_os("FORGE_TEST_BINARY").unwrap_or_else(|| env!("CARGO_BIN_EXE_forge").into());
    let mut cmd = Command::new(binary);
    for (k, _) in std::env::vars() {
        if k.starts_with("FORGE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The base URL of a server started with a piped stdout: its one
/// `forge listening on URL` line (`CONFIG.md`). Panics with what it read
/// (and `context`, e.g. the log) when the line is not that.
pub fn listening(child: &mut Child, context: impl FnOnce() -> String) -> String {
    let mut line = String::new();
    let stdout = child.stdout.take().expect("a piped stdout");
    BufReader::new(stdout).read_line(&mut line).expect("read stdout");
    line.trim()
        .strip_prefix("forge listening on ")
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no listening line: {line:?} {}", context()))
}
