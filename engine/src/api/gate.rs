//! The gate in front of both APIs: who is calling ([`Keyring`]), whether
//! the method or route allows it ([`rules`]), and which namespace the call
//! acts in. It runs before any handler: a call it refuses never reaches
//! the engine. The namespace header is rewritten to the key's own when the
//! key is bound to one (handlers read the header as before); the caller
//! rides along in the request's extensions (publish checks its event
//! patterns) and in the task ([`auth::acting_as`], for the audit log).

use crate::auth::{self, Keyring, Principal, rules};
use crate::error::{Error, Result};
use axum::http::{HeaderMap, HeaderValue, header};
use futures::future::{Either, Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Check `headers` against `rule`: the caller, with the namespace header
/// set to what the call acts in.
fn admit(
    keyring: &Keyring,
    rule: rules::Rule,
    what: &str,
    headers: &mut HeaderMap,
) -> Result<Arc<Principal>> {
    let scopes = match rule {
        rules::Rule::Open => return Ok(Principal::nobody()),
        rules::Rule::Any(scopes) => scopes,
    };
    let who = keyring.authenticate(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    )?;
    who.require(scopes, what)?;
    let asked = match headers.get(fanout_proto::NAMESPACE_HEADER) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            Error::InvalidArgument(format!(
                "header {}: must be ASCII",
                fanout_proto::NAMESPACE_HEADER
            ))
        })?),
    };
    if let Some(ns) = who.namespace_for(asked)?
        && asked.is_none()
    {
        let v = HeaderValue::from_str(ns)
            .map_err(|_| Error::Internal("key namespace is not a header value".into()))?;
        headers.insert(fanout_proto::NAMESPACE_HEADER, v);
    }
    Ok(who)
}

/// The caller a handler serves (set by the gate; anonymous if none).
pub fn caller_of(ext: &axum::http::Extensions) -> Arc<Principal> {
    ext.get::<Arc<Principal>>()
        .cloned()
        .unwrap_or_else(Principal::anonymous)
}

/// HTTP: `axum::middleware::from_fn_with_state` over the API routes. A
/// route with no rule is refused (403) — the route table test catches it.
pub async fn http(
    axum::extract::State(keyring): axum::extract::State<(Arc<Keyring>, bool)>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (keyring, protect_metrics) = keyring;
    if !keyring.required() {
        // Auth off: everyone is the anonymous admin; nothing to look up.
        let who = Principal::anonymous();
        req.extensions_mut().insert(who.clone());
        return auth::acting_as(who, next.run(req)).await;
    }
    let Some(route) = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
    else {
        // Unrouted: the 404 / 405 fallbacks answer.
        return next.run(req).await;
    };
    let method = req.method().as_str().to_string();
    // A method the route does not serve has no rule either (it answers
    // 405): admin only, so a handler added without a rule is closed, and
    // the route table test names it.
    let rule = rules::http(&method, &route, protect_metrics).unwrap_or(rules::ADMIN_ONLY);
    let what = format!("{method} {route}");
    match admit(&keyring, rule, &what, req.headers_mut()) {
        Ok(who) => {
            req.extensions_mut().insert(who.clone());
            auth::acting_as(who, next.run(req)).await
        }
        Err(e) => e.into_response(),
    }
}

/// gRPC: a tower layer over every service.
#[derive(Clone)]
pub struct GrpcGate {
    pub keyring: Arc<Keyring>,
}

impl<S> tower::Layer<S> for GrpcGate {
    type Service = GrpcGated<S>;
    fn layer(&self, inner: S) -> GrpcGated<S> {
        GrpcGated {
            inner,
            keyring: self.keyring.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcGated<S> {
    inner: S,
    keyring: Arc<Keyring>,
}

type GrpcResponse = axum::http::Response<tonic::body::Body>;

impl<S, B> tower::Service<axum::http::Request<B>> for GrpcGated<S>
where
    S: tower::Service<axum::http::Request<B>, Response = GrpcResponse>,
{
    type Response = GrpcResponse;
    type Error = S::Error;
    type Future = Either<
        tokio::task::futures::TaskLocalFuture<Arc<Principal>, S::Future>,
        Ready<std::result::Result<GrpcResponse, S::Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> Self::Future {
        let admitted = if self.keyring.required() {
            let path = req.uri().path().to_string();
            let rule = rules::grpc(&path).unwrap_or(rules::ADMIN_ONLY);
            admit(&self.keyring, rule, &path, req.headers_mut())
        } else {
            // Auth off: everyone is the anonymous admin.
            Ok(Principal::anonymous())
        };
        match admitted {
            Ok(who) => {
                req.extensions_mut().insert(who.clone());
                Either::Left(auth::acting_as(who, self.inner.call(req)))
            }
            Err(e) => Either::Right(ready(Ok(tonic::Status::from(e).into_http()))),
        }
    }
}
