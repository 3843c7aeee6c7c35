//! What `check` answers when it cannot finish: its deadline passes, it
//! is sent SIGTERM, SIGHUP or SIGINT (Claude Code sends SIGTERM at the
//! hook's timeout), or it crashes (SIGSEGV, SIGBUS, SIGILL, SIGFPE, or
//! SIGABRT: an abort, such as an allocation that fails under a memory
//! limit). Claude Code lets a tool run when its hook dies of a signal
//! (unless the hook has `onFailure: block` and Claude Code honours it), so
//! a crash answers like any other failure, with its reason.
//!
//! The answer is decided from state already in memory: whether the config
//! loaded and says `gate.on_error: allow` (until it has loaded, the answer
//! is to refuse). The signal handlers (the deadline is an alarm) do no other
//! I/O than writing a prepared message to stderr, and end the process with
//! `_exit`: nothing they do can hang on a config, a ledger lock or a disk.
//!
//! Exactly one answer is given: whoever claims it first (the normal path,
//! the deadline's alarm or a signal) prints it; a later claimant exits with the
//! code already claimed.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

/// `gate.on_error: allow`, once the config has loaded.
static ON_ERROR_ALLOW: AtomicBool = AtomicBool::new(false);
/// The exit code claimed, plus one (0: nobody has answered yet).
static ANSWER: AtomicU8 = AtomicU8::new(0);

/// A failure's answer is `HEAD`, the reason, then the tail for the config's
/// `gate.on_error` (the signal handlers and `check::failure` alike).
pub const HEAD: &str = "octo-budget: cannot check the budget (";
pub const REFUSE_TAIL: &str =
    "); refusing the call until this is fixed (or set gate.on_error: allow in budgets.yaml)\n";
pub const ALLOW_TAIL: &str =
    "); allowing the call because budgets.yaml sets gate.on_error: allow\n";

/// Records that the config loaded and what its `gate.on_error` says.
pub fn set_on_error_allow(allow: bool) {
    ON_ERROR_ALLOW.store(allow, Ordering::SeqCst);
}

/// What a failure answers now: allow only when a loaded config said so.
pub fn on_error_allow() -> bool {
    ON_ERROR_ALLOW.load(Ordering::SeqCst)
}

/// Claims the answer `code`. Returns the code to exit with: `code` when
/// this is the first claim (the caller then prints its answer), else the
/// code claimed before (the caller prints nothing).
pub fn claim(code: u8) -> u8 {
    match ANSWER.compare_exchange(0, code + 1, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => code,
        Err(prev) => prev - 1,
    }
}

/// Arms the guard: ignores SIGXFSZ (a file-size limit then fails writes
/// with EFBIG, an error `check` reports, instead of killing it), answers
/// SIGTERM, SIGHUP and SIGINT, and sets an alarm (SIGALRM) that answers
/// when `deadline` (whole seconds) passes. An alarm rather than a watchdog
/// thread: nothing to start on every call, and its handler is as simple.
pub fn start(deadline: Duration) {
    ignore_sigxfsz();
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGALRM] {
        install(sig, on_signal);
    }
    for sig in CRASHES {
        install_with(sig, on_signal, libc::SA_ONSTACK);
    }
    alarm_in(deadline);
}

/// The signals of a crash. Their handler runs on the thread's alternate
/// signal stack (std gives every thread one), so that a stack overflow
/// answers too.
const CRASHES: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// Runs `handler` on `sig`, every signal blocked meanwhile. The handler
/// must do only async-signal-safe work (atomics, [`write_all`], `_exit`).
pub fn install(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    install_with(sig, handler, 0);
}

fn install_with(sig: libc::c_int, handler: extern "C" fn(libc::c_int), flags: libc::c_int) {
    // SAFETY: installs a handler the caller vouches for (see above).
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = handler as libc::sighandler_t;
        libc::sigfillset(&mut act.sa_mask);
        act.sa_flags = flags;
        libc::sigaction(sig, &act, std::ptr::null_mut());
    }
}

/// Delivers SIGALRM once `deadline` (whole seconds, at least one) passes.
pub fn alarm_in(deadline: Duration) {
    let seconds = deadline.as_secs().clamp(1, u64::from(u32::MAX)) as libc::c_uint;
    // SAFETY: alarm(2) only arms the process's timer.
    unsafe {
        libc::alarm(seconds);
    }
}

/// Ignores `sig` (the resident helper: SIGHUP and SIGINT, meant for the
/// terminal it was started from).
pub fn ignore(sig: libc::c_int) {
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory effects.
    unsafe {
        libc::signal(sig, libc::SIG_IGN);
    }
}

/// SIGXFSZ would kill the process (exit 153, no reason) at a file-size
/// limit; ignored, the write fails with EFBIG and is reported instead.
pub fn ignore_sigxfsz() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory effects.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    let why: &[u8] = match sig {
        libc::SIGALRM => b"no answer within 5 s",
        libc::SIGTERM => b"stopped by SIGTERM before it could answer",
        libc::SIGHUP => b"stopped by SIGHUP before it could answer",
        libc::SIGINT => b"stopped by SIGINT before it could answer",
        libc::SIGSEGV => b"crashed: SIGSEGV",
        libc::SIGBUS => b"crashed: SIGBUS",
        libc::SIGILL => b"crashed: SIGILL",
        libc::SIGFPE => b"crashed: SIGFPE",
        _ => b"crashed: SIGABRT (an abort, such as memory that could not be allocated)",
    };
    answer_now(why);
}

/// Answers with the failure answer and ends the process at once. Only
/// async-signal-safe calls.
fn answer_now(why: &[u8]) -> ! {
    let allow = ON_ERROR_ALLOW.load(Ordering::SeqCst);
    let code: u8 = if allow { 0 } else { 2 };
    match ANSWER.compare_exchange(0, code + 1, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => {
            write_all(2, HEAD.as_bytes());
            write_all(2, why);
            write_all(2, if allow { ALLOW_TAIL } else { REFUSE_TAIL }.as_bytes());
            // SAFETY: _exit is async-signal-safe and ends every thread.
            unsafe { libc::_exit(code as libc::c_int) }
        }
        // The normal path already answered (and is printing it): its code.
        Err(prev) => unsafe { libc::_exit((prev - 1) as libc::c_int) },
    }
}

/// Writes `bytes` to `fd` with write(2) alone (async-signal-safe),
/// retrying after EINTR; gives up on any other failure.
pub fn write_all(fd: libc::c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writes from a valid slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            let interrupted =
                n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
            if interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}
