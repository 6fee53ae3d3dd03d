//! Who is calling and what they may do: made from a key by the keyring
//! (or [`Principal::anonymous`] when auth is off), checked at the API edge.

use crate::error::{Error, Result};
use crate::model::{ApiKey, Scope};
use std::sync::Arc;

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name (what the audit log records); `anonymous` with auth
    /// off.
    pub name: String,
    /// The key's public id; empty when anonymous.
    pub key_id: String,
    /// The namespace the key is bound to (`None`: every namespace).
    pub namespace: Option<String>,
    /// Sorted; `admin` includes every other scope.
    pub scopes: Vec<Scope>,
    /// Event-name patterns `publish` is limited to (empty: any).
    pub events: Vec<String>,
}

impl Principal {
    /// Everything, everywhere: the caller when auth is off.
    pub fn anonymous() -> Arc<Principal> {
        static ANON: std::sync::OnceLock<Arc<Principal>> = std::sync::OnceLock::new();
        ANON.get_or_init(|| {
            Arc::new(Principal {
                name: "anonymous".into(),
                key_id: String::new(),
                namespace: None,
                scopes: vec![Scope::Admin],
                events: Vec::new(),
            })
        })
        .clone()
    }

    /// No key and no scope: the caller of an open route (health, metrics)
    /// while keys are required. Open routes change nothing; should one
    /// ever call something that checks scopes, it is refused.
    pub fn nobody() -> Arc<Principal> {
        static NOBODY: std::sync::OnceLock<Arc<Principal>> = std::sync::OnceLock::new();
        NOBODY
            .get_or_init(|| {
                Arc::new(Principal {
                    name: "unauthenticated".into(),
                    key_id: String::new(),
                    namespace: None,
                    scopes: Vec::new(),
                    events: Vec::new(),
                })
            })
            .clone()
    }

    pub fn from_key(key: &ApiKey) -> Principal {
        Principal {
            name: key.name.clone(),
            key_id: key.id.clone(),
            namespace: key.namespace.clone(),
            scopes: key.scopes.clone(),
            events: key.events.clone(),
        }
    }

    /// Holds `scope` (or `admin`).
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == scope || *s == Scope::Admin)
    }

    /// Holds one of `any`, or PERMISSION_DENIED naming what is missing.
    pub fn require(&self, any: &[Scope], what: &str) -> Result<()> {
        if any.iter().any(|s| self.has(*s)) {
            return Ok(());
        }
        let need = any
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" or ");
        let held = self
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Err(Error::PermissionDenied(format!(
            "{what} needs a key with scope {need}; key '{}' ({}) has {held}",
            self.name, self.key_id
        )))
    }

    /// The namespace a request naming `requested` (`None`: it names none)
    /// acts in: the key's own when bound (naming another is refused),
    /// else the request's.
    pub fn namespace_for<'a>(&'a self, requested: Option<&'a str>) -> Result<Option<&'a str>> {
        match (&self.namespace, requested) {
            (None, r) => Ok(r),
            (Some(own), None) => Ok(Some(own)),
            (Some(own), Some(r)) if r == own => Ok(Some(own)),
            (Some(own), Some(r)) => Err(Error::PermissionDenied(format!(
                "key '{}' ({}) is bound to namespace '{own}'; the request names namespace '{}'",
                self.name,
                self.key_id,
                crate::error::clip(r, 200)
            ))),
        }
    }

    /// May this caller publish `event`? (`publish` scope, and the name
    /// within the key's event patterns when it has any.)
    pub fn may_publish(&self, event: &str) -> Result<()> {
        self.require(&[Scope::Publish], "publishing")?;
        if self.events.is_empty()
            || self.has(Scope::Admin)
            || self
                .events
                .iter()
                .any(|p| crate::routing::pattern::matches(p, event))
        {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!(
            "key '{}' ({}) may publish only events matching {}; not '{}'",
            self.name,
            self.key_id,
            self.events.join(", "),
            crate::error::clip(event, 200)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[Scope], ns: Option<&str>, events: &[&str]) -> Principal {
        Principal {
            name: "k".into(),
            key_id: "fo_12345678".into(),
            namespace: ns.map(String::from),
            scopes: scopes.to_vec(),
            events: events.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn admin_includes_every_scope_and_others_only_themselves() {
        let admin = key(&[Scope::Admin], None, &[]);
        let read = key(&[Scope::Read], None, &[]);
        for s in Scope::ALL {
            assert!(admin.has(*s));
            assert_eq!(read.has(*s), *s == Scope::Read);
        }
        let e = read
            .require(&[Scope::Publish, Scope::Admin], "publishing")
            .unwrap_err();
        assert!(e.to_string().contains("publish or admin"), "{e}");
    }

    #[test]
    fn a_bound_key_acts_only_in_its_namespace() {
        let k = key(&[Scope::Read], Some("shop"), &[]);
        assert_eq!(k.namespace_for(None).ok(), Some(Some("shop")));
        assert_eq!(k.namespace_for(Some("shop")).ok(), Some(Some("shop")));
        assert!(matches!(
            k.namespace_for(Some("bank")),
            Err(Error::PermissionDenied(_))
        ));
        let any = key(&[Scope::Read], None, &[]);
        assert_eq!(any.namespace_for(Some("bank")).ok(), Some(Some("bank")));
    }

    #[test]
    fn event_patterns_limit_publishing() {
        let k = key(&[Scope::Publish], None, &["order.*"]);
        assert!(k.may_publish("order.placed").is_ok());
        let e = k.may_publish("user.created").unwrap_err();
        assert!(e.to_string().contains("order.*"), "{e}");
        assert!(key(&[Scope::Read], None, &[]).may_publish("x").is_err());
    }
}
