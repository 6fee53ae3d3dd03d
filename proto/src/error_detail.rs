//! The structured detail of an engine error on the wire: the engine attaches
//! a [`v1::ErrorDetail`] to every error status, protobuf-encoded in binary
//! metadata, and clients read it back with [`decode`]. Clients branch on its
//! fields; the status message is for people.

use crate::v1;
use prost::Message;

/// Binary metadata key of the error detail (`-bin`: tonic base64-encodes it).
pub const ERROR_DETAIL_KEY: &str = "fanout-error-detail-bin";

/// Attach `detail` to `status`.
pub fn attach(status: &mut tonic::Status, detail: &v1::ErrorDetail) {
    let value = tonic::metadata::MetadataValue::from_bytes(&detail.encode_to_vec());
    status.metadata_mut().insert_bin(ERROR_DETAIL_KEY, value);
}

/// The detail an engine attached to `status`; `None` when the status did not
/// come from the engine's handlers (a cut connection, a proxy, a timeout).
pub fn decode(status: &tonic::Status) -> Option<v1::ErrorDetail> {
    let value = status.metadata().get_bin(ERROR_DETAIL_KEY)?;
    let bytes = value.to_bytes().ok()?;
    v1::ErrorDetail::decode(bytes.as_ref()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_metadata() {
        let detail = v1::ErrorDetail {
            code: v1::ErrorCode::InvalidPayload as i32,
            message: "payload is invalid".into(),
            violations: vec![v1::SchemaViolation {
                path: "/qty".into(),
                message: "0 is less than 1".into(),
            }],
            violation_count: 3,
            retry_after_ms: 0,
            entity: Some(v1::EntityRef {
                kind: v1::EntityKind::Event as i32,
                id: "orders.created".into(),
                version: 2,
            }),
        };
        let mut status = tonic::Status::invalid_argument("payload is invalid");
        attach(&mut status, &detail);
        // Through the HTTP/2 header encoding and back.
        let headers = status.metadata().clone().into_headers();
        let back = tonic::Status::from_header_map(&{
            let mut h = headers;
            h.insert("grpc-status", "3".parse().unwrap());
            h
        })
        .expect("a status");
        assert_eq!(decode(&back), Some(detail));
        assert_eq!(decode(&tonic::Status::internal("x")), None);
    }
}
