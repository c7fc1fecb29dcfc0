//! Standard output and error for the whole binary, without panics on a
//! closed pipe.
//!
//! `std`'s `println!` panics when stdout is a pipe whose reader has gone
//! (`roster tasks --json | head`), and Rust ignores SIGPIPE, so the
//! process would print a panic and a backtrace instead of stopping quietly
//! as Unix tools do. Resetting SIGPIPE needs `unsafe`, which the workspace
//! forbids; instead `main.rs` shadows `print!`, `println!` and `eprintln!`
//! for every module with macros that call [`out`] and [`err`].
//!
//! A reader that went away is not a failure of the command: the process
//! exits at once with status 0, having printed what the reader wanted.
//! Any other write error (a full disk behind a redirect) is reported on
//! stderr and exits with status 1.

use std::io::{ErrorKind, Write};

/// Writes formatted text to stdout (the target of `print!`/`println!`).
pub fn out(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args) {
        stdout_failed(&e);
    }
}

/// Writes formatted text to stderr (the target of `eprintln!`). A failure
/// to write there cannot be reported anywhere, so it is ignored.
pub fn err(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Handles a failed write to stdout; never returns.
pub fn stdout_failed(e: &std::io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    err(format_args!(
        "error: cannot write to standard output: {e}\n"
    ));
    std::process::exit(1);
}

/// Whether `e` (or one of its causes) is a closed pipe: `main` then exits
/// quietly too, for commands that write through their own writer.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}
