//! `AdminService`'s API-key and audit methods (the trait impl in
//! `admin.rs` delegates here).

use super::namespace;
use crate::engine::{Engine, KeySpec};
use crate::error::{Error, Result};
use crate::model::{ApiKey, AuditQuery, Scope};
use fanout_proto::v1 as pb;
use tonic::Request;

/// A stored key as the API shows it (never its hash).
pub fn key_info(k: ApiKey) -> pb::ApiKeyInfo {
    pb::ApiKeyInfo {
        id: k.id,
        name: k.name,
        namespace: k.namespace.unwrap_or_default(),
        scopes: k.scopes.iter().map(|s| s.as_str().to_string()).collect(),
        events: k.events,
        created_by: k.created_by,
        created_at_ms: k.created_at_ms,
        expires_at_ms: k.expires_at_ms,
        revoked_at_ms: k.revoked_at_ms,
        last_used_at_ms: k.last_used_at_ms,
    }
}

/// `publish`, … → scopes, naming a wrong one.
pub fn parse_scopes(scopes: &[String]) -> Result<Vec<Scope>> {
    scopes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Scope::parse(s).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "scopes[{i}] '{}' is invalid: expected one of publish, worker, read, admin",
                    crate::error::clip(s, 64)
                ))
            })
        })
        .collect()
}

pub(super) async fn create(
    engine: &Engine,
    r: pb::CreateApiKeyRequest,
) -> Result<pb::CreateApiKeyResponse> {
    let spec = KeySpec {
        name: r.name,
        scopes: parse_scopes(&r.scopes)?,
        namespace: (!r.namespace.is_empty()).then_some(r.namespace),
        events: r.events,
        expires_in_ms: i64::try_from(r.expires_in_ms).unwrap_or(i64::MAX),
    };
    let (key, secret) = engine.create_key(spec).await?;
    Ok(pb::CreateApiKeyResponse {
        key: Some(key_info(key)),
        secret,
    })
}

pub(super) async fn list(engine: &Engine) -> Result<pb::ListApiKeysResponse> {
    Ok(pb::ListApiKeysResponse {
        keys: engine
            .list_keys()
            .await?
            .into_iter()
            .map(key_info)
            .collect(),
    })
}

pub(super) async fn audit(
    engine: &Engine,
    req: Request<pb::ListAuditRequest>,
) -> Result<pb::ListAuditResponse> {
    let ns = namespace(&req)?;
    let r = req.into_inner();
    let entries = engine
        .list_audit(AuditQuery {
            namespace: (!r.all_namespaces).then_some(ns),
            since_ms: r.since_ms,
            before_id: r.before_id,
            limit: if r.limit == 0 { 100 } else { r.limit },
        })
        .await?;
    Ok(pb::ListAuditResponse {
        entries: entries
            .into_iter()
            .map(|e| pb::AuditEntry {
                id: e.id,
                at_ms: e.at_ms,
                namespace: e.namespace,
                actor: e.actor,
                action: e.action,
                target: e.target,
                detail_json: e.detail,
            })
            .collect(),
    })
}
