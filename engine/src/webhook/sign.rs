//! Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(key,
//! "{id}.{timestamp}.{body}")), the key being the base64 after `whsec_`.
//! Several signatures (during a secret rotation) are space-separated.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One signature of `body` sent as message `id` at `timestamp` (seconds).
/// `None` when the secret is not `whsec_` + base64 (checked when saved, so
/// only a corrupted store gets here).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: one signature per signing secret.
pub fn header<'a>(
    secrets: impl Iterator<Item = &'a str>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .filter_map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's published test vector.
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let sig = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
        );
    }

    #[test]
    fn every_signing_secret_signs() {
        let a = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let b = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let h = header([a, b].into_iter(), "m", 1, b"{}");
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(Some(parts[0].to_string()), sign(a, "m", 1, b"{}"));
        assert_eq!(Some(parts[1].to_string()), sign(b, "m", 1, b"{}"));
        assert_ne!(parts[0], parts[1]);
        assert_eq!(sign("not-a-secret", "m", 1, b"{}"), None);
    }
}
