//! `filter test`: the engine's matcher, offline.

use super::*;

#[derive(Subcommand)]
pub enum FilterCmd {
    /// Does PAYLOAD match PATTERN? Prints `match` (exit 0) or `no match`
    /// (exit 1); an invalid pattern prints why (exit 2).
    Test {
        #[arg(long)]
        pattern: String,
        #[arg(long)]
        payload: String,
    },
}

pub fn filter(cmd: FilterCmd) -> Result<ExitCode> {
    let FilterCmd::Test { pattern, payload } = cmd;
    match fanout_engine::Engine::test_filter(&read_arg(&pattern)?, &read_arg(&payload)?) {
        Ok(true) => {
            println!("match");
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            println!("no match");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}
