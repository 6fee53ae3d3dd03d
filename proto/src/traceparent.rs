//! The W3C `traceparent` as Fanout carries it (stored with each event,
//! sent with each run assignment): read and written here once for the
//! engine and the SDK, as the W3C propagator does for version 00 —
//! lowercase hex, exactly four parts, version `ff` invalid, ids not all
//! zero, of the flags only `sampled` kept — without a header map, a
//! `Context` or `fmt` per span. Each side turns the parts into its
//! OpenTelemetry span context.

/// The parts of a valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id (not zero).
    pub trace_id: u128,
    /// The parent span's id (not zero).
    pub span_id: u64,
    /// Whether the `sampled` flag is set (the only flag defined).
    pub sampled: bool,
}

impl TraceParent {
    /// Read `00-<32 hex>-<16 hex>-<2 hex>`; `None` when malformed.
    pub fn parse(s: &str) -> Option<TraceParent> {
        let mut parts = s.trim().split('-');
        let (Some(version), Some(trace), Some(span), Some(flags), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if version.len() != 2 || version == "ff" || hex(version).is_none() {
            return None;
        }
        let trace_id = hex(trace).filter(|_| trace.len() == 32)?;
        let span_id = u64::try_from(hex(span).filter(|_| span.len() == 16)?).ok()?;
        let flags = u8::try_from(hex(flags).filter(|_| flags.len() == 2)?).ok()?;
        (trace_id != 0 && span_id != 0).then_some(TraceParent {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// Written as version 00, as the propagator writes it.
    pub fn format(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id.to_be_bytes());
        out.push('-');
        push_hex(&mut out, &self.span_id.to_be_bytes());
        out.push('-');
        push_hex(&mut out, &[u8::from(self.sampled)]);
        out
    }
}

/// Lowercase hex (as W3C requires) up to 32 digits as a number.
fn hex(s: &str) -> Option<u128> {
    if s.len() > 32 {
        return None;
    }
    s.bytes().try_fold(0u128, |n, b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(digit))
    })
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::TraceParent;

    #[test]
    fn a_traceparent_round_trips() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(s);
        assert_eq!(
            tp,
            Some(TraceParent {
                trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                span_id: 0x00f0_67aa_0ba9_02b7,
                sampled: true,
            })
        );
        assert_eq!(tp.map(|t| t.format()).as_deref(), Some(s));
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe";
        assert_eq!(
            TraceParent::parse(unsampled).map(|t| t.format()).as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
        );
    }
}
