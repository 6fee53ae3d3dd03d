//! Repository chores, run as `cargo xtask <task>` (an alias in
//! `.cargo/config.toml`), so they need nothing but cargo.
//!
//! - `verify [-- TEST ARGS]`: what CI checks, in order: rustfmt, clippy
//!   with warnings as errors, then every test and doctest of the
//!   workspace (`TEST ARGS` go to the test harness, e.g. `--include-ignored`).

use std::process::{Command, ExitCode};

fn cargo(args: &[&str]) -> bool {
    eprintln!("[xtask] cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    match Command::new(cargo).args(args).status() {
        Ok(s) => s.success(),
        Err(e) => {
            eprintln!("[xtask] cannot run cargo: {e}");
            false
        }
    }
}

fn verify(test_args: &[String]) -> bool {
    let mut test = vec!["test", "--workspace"];
    if !test_args.is_empty() {
        test.push("--");
        test.extend(test_args.iter().map(String::as_str));
    }
    cargo(&["fmt", "--all", "--", "--check"])
        && cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        && cargo(&test)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ok = match args.first().map(String::as_str) {
        Some("verify") => {
            let rest = args.iter().skip(1).skip_while(|a| *a == "--");
            verify(&rest.cloned().collect::<Vec<_>>())
        }
        _ => {
            eprintln!("usage: cargo xtask verify [-- TEST ARGS]");
            false
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
