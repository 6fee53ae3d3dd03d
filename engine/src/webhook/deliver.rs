//! One delivery: build the Standard Webhooks request for a claimed run,
//! POST it, and turn the answer into the attempt's [`Outcome`].
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx | success; the body is the run's output (JSON as is, other text as a JSON string, empty as `null`) |
//! | 3xx | failure: redirects are never followed |
//! | 410 | failure, and the subscription is disabled |
//! | 429 / 503 with `Retry-After` | failure; the next attempt no sooner than asked (≤ 24 h) |
//! | other, timeout, refused address | failure under the retry policy |
//!
//! A failure's error names the status, the time taken and the first 4 KiB
//! of the body, so each attempt keeps what the endpoint said.

use super::sign;
use crate::limits;
use crate::model::*;
use crate::telemetry::TraceContext;
use serde_json::value::RawValue;
use std::time::{Duration, Instant, SystemTime};

/// How much of an answer's body a failed attempt keeps.
pub const KEPT_BODY_BYTES: usize = 4 * 1024;

/// What a delivery came to.
pub struct Answer {
    pub outcome: Outcome,
    /// The endpoint answered 410 Gone: disable the subscription.
    pub gone: bool,
    /// The HTTP status of the answer (0: none came).
    pub status: u16,
}

/// The JSON body of a delivery.
#[derive(serde::Serialize)]
struct Body<'a> {
    r#type: &'a str,
    timestamp: String,
    data: &'a RawValue,
    event_id: &'a str,
    run_id: &'a str,
    attempt: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    ordering_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    replay_of: Option<&'a str>,
}

/// The request body for `run` (stable across its retries but for
/// `attempt`).
pub fn body(run: &ClaimedRun) -> Vec<u8> {
    let fallback;
    let data = match RawValue::from_string(run.payload_json.clone()) {
        Ok(v) => v,
        Err(_) => {
            // Stored payloads are validated JSON; never send a broken body.
            fallback = RawValue::from_string("null".into()).ok();
            match fallback {
                Some(v) => v,
                None => return b"{}".to_vec(),
            }
        }
    };
    let published =
        SystemTime::UNIX_EPOCH + Duration::from_millis(run.published_at_ms.max(0) as u64);
    serde_json::to_vec(&Body {
        r#type: &run.event,
        timestamp: humantime::format_rfc3339_millis(published).to_string(),
        data: &data,
        event_id: &run.event_id,
        run_id: &run.run_id,
        attempt: run.attempt,
        ordering_key: &run.ordering_key,
        replay_of: run.replay_of.as_deref(),
    })
    .unwrap_or_default()
}

/// POST `run` to `ep` and read the answer.
pub async fn deliver(
    client: &reqwest::Client,
    ep: &Endpoint,
    run: &ClaimedRun,
    trace: &TraceContext,
    max_output: usize,
) -> Answer {
    let body = body(run);
    let now = now_ms();
    let timestamp = now / 1000;
    let signature = sign::header(ep.secrets.signing(now), &run.run_id, timestamp, &body);
    let started = Instant::now();
    let mut req = client
        .post(&ep.url)
        .timeout(Duration::from_millis(ep.timeout_ms))
        .header("content-type", "application/json")
        .header("webhook-id", &run.run_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature);
    if !trace.is_empty() {
        // The delivery's span (or, untraced, the event's creation context),
        // so the receiver's spans join the event's trace.
        req = req.header("traceparent", &trace.traceparent);
        if !trace.tracestate.is_empty() {
            req = req.header("tracestate", &trace.tracestate);
        }
    }
    let res = match req.body(body).send().await {
        Ok(r) => r,
        Err(e) => return failed(describe(&e, ep.timeout_ms), 0),
    };
    let status = res.status();
    let code = status.as_u16();
    let retry_after = retry_after(res.headers().get("retry-after"));
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| limits::truncate(l.to_string(), 200));
    let limit = if status.is_success() {
        max_output
    } else {
        KEPT_BODY_BYTES
    };
    let (text, cut) = match read_body(res, limit).await {
        Ok(b) => b,
        Err(e) => return failed(describe(&e, ep.timeout_ms), 0),
    };
    let took = started.elapsed().as_millis();
    if status.is_success() {
        let output = if text.trim().is_empty() {
            "null".to_string()
        } else if !cut && serde_json::from_str::<&RawValue>(&text).is_ok() {
            text
        } else {
            serde_json::Value::String(limits::truncate(text, KEPT_BODY_BYTES)).to_string()
        };
        return Answer {
            outcome: Outcome::Ok(output),
            gone: false,
            status: code,
        };
    }
    let mut message = format!("HTTP {status} in {took} ms");
    if status.is_redirection() {
        message.push_str(&format!(
            " (redirect to {}; redirects are not followed: subscribe the final URL)",
            location.as_deref().unwrap_or("nowhere")
        ));
    }
    if !text.is_empty() {
        message.push_str(": ");
        message.push_str(&text);
    }
    let wait = match status.as_u16() {
        429 | 503 => retry_after.unwrap_or(0),
        _ => 0,
    };
    Answer {
        outcome: Outcome::Failed {
            message: limits::truncate(message, limits::MAX_ERROR_TEXT_BYTES),
            fatal: false,
            retry_after_ms: wait,
        },
        gone: status == reqwest::StatusCode::GONE,
        status: code,
    }
}

fn failed(message: String, retry_after_ms: u64) -> Answer {
    Answer {
        outcome: Outcome::Failed {
            message: limits::truncate(message, limits::MAX_ERROR_TEXT_BYTES),
            fatal: false,
            retry_after_ms,
        },
        gone: false,
        status: 0,
    }
}

/// A transport error as a person reads it (the address refusal from the
/// resolver is in its source chain).
fn describe(e: &reqwest::Error, timeout_ms: u64) -> String {
    if e.is_timeout() {
        return format!("no answer within the timeout of {timeout_ms} ms");
    }
    let mut parts = vec![e.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}

/// Up to `limit` bytes of the body (lossy UTF-8) and whether it was cut.
async fn read_body(mut res: reqwest::Response, limit: usize) -> reqwest::Result<(String, bool)> {
    let mut buf = Vec::new();
    let mut cut = false;
    while let Some(chunk) = res.chunk().await? {
        let room = limit.saturating_sub(buf.len());
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            cut = true;
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((String::from_utf8_lossy(&buf).into_owned(), cut))
}

/// `Retry-After` as delay seconds or an HTTP date, in ms, at most 24 h.
fn retry_after(v: Option<&reqwest::header::HeaderValue>) -> Option<u64> {
    let s = v?.to_str().ok()?.trim();
    let ms = match s.parse::<u64>() {
        Ok(secs) => secs.saturating_mul(1000),
        Err(_) => {
            let at = httpdate::parse_http_date(s).ok()?;
            at.duration_since(SystemTime::now())
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        }
    };
    Some(ms.min(limits::MAX_RETRY_AFTER_MS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("7"))),
            Some(7_000)
        );
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("99999999"))),
            Some(limits::MAX_RETRY_AFTER_MS)
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let ms = retry_after(Some(&HeaderValue::from_str(&later).unwrap())).unwrap();
        assert!((110_000..=120_000).contains(&ms), "{ms}");
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon"))), None);
        assert_eq!(retry_after(None), None);
    }

    #[test]
    fn body_carries_the_event_and_the_run() {
        let run = ClaimedRun {
            run_id: "r1".into(),
            attempt: 2,
            task_id: "hook".into(),
            event: "order.created".into(),
            event_id: "e1".into(),
            payload_json: r#"{"n": 12345678901234567890}"#.into(),
            lease_ms: 1000,
            ordering_key: "k".into(),
            tags: vec![],
            published_at_ms: 1_649_367_553_000,
            event_version: 1,
            trace: Default::default(),
            replay_of: None,
            journal: vec![],
        };
        let b = String::from_utf8(body(&run)).unwrap();
        assert_eq!(
            b,
            r#"{"type":"order.created","timestamp":"2022-04-07T21:39:13.000Z","data":{"n": 12345678901234567890},"event_id":"e1","run_id":"r1","attempt":2,"ordering_key":"k"}"#
        );
    }
}
