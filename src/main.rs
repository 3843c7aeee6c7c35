//! octo-budget: per-repository budgets for Claude Code. The binary: `cli`
//! reads flags and environment, `commands` call the `octo_budget` library
//! (every rule) and hand its results to `output`; `error` decides exit
//! codes (`exit`). See README, "Architecture".

mod cli;
mod commands;
mod error;
mod exit;
mod output;
mod serve;

use std::process::ExitCode;

use cli::{Cli, Command, Environment, LiveCommand};
use commands::Context;

fn main() -> ExitCode {
    // A file-size limit fails writes with EFBIG (reported like any other
    // write error) instead of killing the process with no reason.
    commands::guard::ignore_sigxfsz();
    let cli = Cli::parse_args();
    let env = Environment::from_process();
    let ctx = Context {
        locations: env.locations(&cli.global),
        env,
        now: cli.global.now.unwrap_or_else(chrono::Utc::now),
        started: std::time::Instant::now(),
        global: cli.global.clone(),
    };
    if let Command::Live(LiveCommand::Check(args)) = cli.command {
        return exit::code(run_check(&ctx, args.resident));
    }
    if let Command::Live(LiveCommand::Statusline(args)) = cli.command {
        return exit::code(commands::statusline::run(&ctx, args.resident));
    }
    // One line on stderr for a panic elsewhere too: no backtrace noise. A
    // reader that went away (`report | head`) is not an error.
    std::panic::set_hook(Box::new(|info| {
        if !is_broken_stdout_panic(info.payload()) {
            eprintln!("octo-budget: internal error: {info}; please report this");
        }
    }));
    let result = std::panic::catch_unwind(|| match &cli.command {
        Command::Report(a) => commands::report::run(&ctx, a),
        Command::Ingest(a) => commands::ingest::run(&ctx, a),
        Command::Status(a) => commands::status::run(&ctx, a),
        Command::Alerts(a) => commands::alerts::run(&ctx, a),
        Command::Hook { action } => commands::hook::run(&ctx, action),
        Command::Init(a) => commands::init::run(&ctx, a),
        Command::Completions { shell } => commands::docs::completions(*shell),
        Command::Man => commands::docs::man(),
        Command::Serve(a) => commands::serve::run(&ctx, a),
        Command::Resident { socket } => commands::resident::serve(socket),
        Command::Live(_) => unreachable!("handled above"),
    });
    match result {
        Ok(Ok(code)) => exit::code(code),
        Ok(Err(e)) if e.is_broken_pipe() => exit::code(exit::OK),
        Ok(Err(e)) => {
            eprintln!("octo-budget: {}", e.to_string().replace('\n', " "));
            exit::code(e.exit_code())
        }
        Err(p) if is_broken_stdout_panic(p.as_ref()) => exit::code(exit::OK),
        Err(_) => exit::code(exit::INTERNAL),
    }
}

/// `println!` panics when stdout is a closed pipe; its message is
/// "failed printing to stdout: Broken pipe (os error 32)".
fn is_broken_stdout_panic(payload: &(dyn std::any::Any + Send)) -> bool {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    msg.starts_with("failed printing to stdout") && msg.to_ascii_lowercase().contains("broken pipe")
}

/// `check` must answer 0 or 2, within its deadline, whatever happens: a
/// panic, a hung lock or a slow disk blocks the call (or allows it with
/// `on_error: allow`), and never exits 1 or 101.
fn run_check(ctx: &Context, resident: bool) -> u8 {
    std::panic::set_hook(Box::new(|_| {}));
    // The deadline (an alarm) and the signal handlers answer from what is already
    // known (see commands::guard), with no I/O that could hang.
    commands::guard::start(commands::check::DEADLINE);
    match std::panic::catch_unwind(|| {
        if resident {
            commands::resident::check(ctx)
        } else {
            commands::check::run(ctx, None)
        }
    }) {
        Ok(code) => code,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            commands::check::fail(&error::Error::Internal(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    /// `check` answers a panic with a refusal (`run_check`'s `catch_unwind`),
    /// so the unwinder this crate links (build.rs: GCC's static
    /// `libgcc_eh` on glibc) must carry a panic up to `catch_unwind`,
    /// running destructors on the way, in the main thread as in others.
    #[test]
    fn a_panic_unwinds_to_catch_unwind() {
        use std::sync::atomic::{AtomicBool, Ordering};
        static DROPPED: AtomicBool = AtomicBool::new(false);
        struct Flag;
        impl Drop for Flag {
            fn drop(&mut self) {
                DROPPED.store(true, Ordering::SeqCst);
            }
        }
        let caught = std::panic::catch_unwind(|| {
            let _flag = Flag;
            let empty: Vec<u8> = Vec::new();
            empty[std::hint::black_box(3)]
        });
        assert!(caught.is_err());
        assert!(
            DROPPED.load(Ordering::SeqCst),
            "unwinding ran no destructor"
        );
        let joined = std::thread::spawn(|| panic!("in a thread")).join();
        assert!(joined.is_err());
    }
}
