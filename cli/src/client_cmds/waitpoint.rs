//! `wait` and `waitpoint show | create-token | complete`.

use super::*;

#[derive(Args)]
pub struct WaitArgs {
    /// Waitpoint id.
    id: String,
    #[arg(long)]
    json: bool,
}

fn waitpoint_json(w: &fanout::WaitpointState) -> Result<Value> {
    Ok(json!({
        "waitpoint_id": w.id, "kind": w.kind, "status": w.status, "event_id": w.event_id,
        "results": serde_json::to_value(&w.results)?, "data": w.data,
    }))
}

pub async fn wait(ctx: &Ctx, a: WaitArgs) -> Result<ExitCode> {
    let client = ctx.client().await?;
    let w = client.wait(&a.id).await?;
    if a.json {
        println!("{}", waitpoint_json(&w)?);
    } else {
        println!("{} {} ({})", w.kind, w.id, w.status);
        println!("{}", serde_json::to_string_pretty(&waitpoint_json(&w)?)?);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum WaitpointCmd {
    /// Show a waitpoint and, for scatter-gather, every result so far.
    Show { id: String },
    /// Create a token waitpoint, completed later with `waitpoint complete`.
    CreateToken {
        #[arg(long)]
        timeout: Option<humantime::Duration>,
    },
    /// Complete a token waitpoint with data (JSON text or @file).
    Complete {
        id: String,
        #[arg(long, default_value = "null")]
        data: String,
    },
}

pub async fn waitpoint(ctx: &Ctx, cmd: WaitpointCmd) -> Result<ExitCode> {
    let client = ctx.client().await?;
    let w = match cmd {
        WaitpointCmd::Show { id } => client.get_waitpoint(&id).await?,
        WaitpointCmd::CreateToken { timeout } => {
            client.create_token(timeout.map(Into::into)).await?
        }
        WaitpointCmd::Complete { id, data } => {
            let data: Value =
                serde_json::from_str(&read_arg(&data)?).context("--data is not valid JSON")?;
            client.complete_token(&id, &data).await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&waitpoint_json(&w)?)?);
    Ok(ExitCode::SUCCESS)
}
