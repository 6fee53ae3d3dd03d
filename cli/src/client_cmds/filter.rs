//! `filter test`: the engine's matcher, offline.

use super::*;

#[derive(Subcommand)]
pub enum FilterCmd {
    /// Does PAYLOAD match PATTERN? Prints `match` (exit 0) or `no match`
    /// (exit 1); an invalid pattern prints why (exit 2), an invalid payload
    /// too (exit 3). Either argument may be `@FILE` to read it from a file.
    Test {
        /// The pattern as JSON text, or `@FILE`.
        #[arg(long)]
        pattern: String,
        /// The payload as JSON text, or `@FILE`.
        #[arg(long)]
        payload: String,
    },
}

pub fn filter(cmd: FilterCmd) -> Result<ExitCode> {
    let FilterCmd::Test { pattern, payload } = cmd;
    let (pattern, payload) = (read_arg(&pattern)?, read_arg(&payload)?);
    // Told apart so a script knows which input to fix.
    let filter = match fanout_engine::routing::filter::Filter::parse(&pattern) {
        Ok(Some(f)) => f,
        Ok(None) => {
            eprintln!("error: the pattern is empty");
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("error: the pattern is invalid: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    // The engine's own strict parse (repeated keys refused), as at publish.
    let payload = match fanout_engine::routing::schema::parse_json("payload", &payload) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    if filter.matches(&payload) {
        println!("match");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("no match");
        Ok(ExitCode::from(1))
    }
}
