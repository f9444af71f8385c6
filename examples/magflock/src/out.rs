//! Printing to standard output without panicking.
//!
//! Rust ignores SIGPIPE, so `println!` panics when the reader has gone away
//! (`magflock logs | head`, `magflock keys list | grep -q anon`). A one-shot command whose
//! reader left has nothing more to do and exits quietly with success, as `cat` would; the
//! server ([`serving`]) keeps serving when nobody reads its output.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

static SERVING: AtomicBool = AtomicBool::new(false);

/// From now on a closed standard output is ignored instead of ending the process.
pub fn serving() {
    SERVING.store(true, Ordering::Relaxed);
}

/// Writes one line to standard output (the body of [`say!`]).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written
        && e.kind() == std::io::ErrorKind::BrokenPipe
        && !SERVING.load(Ordering::Relaxed)
    {
        std::process::exit(0);
    }
}

/// `println!` that neither panics nor keeps going when the reader has gone away.
macro_rules! say {
    () => {
        $crate::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}
