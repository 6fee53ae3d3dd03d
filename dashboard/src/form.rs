//! Form posts: fields (repeated names allowed, for checkbox selections),
//! the CSRF check, and the namespace they act in.

use crate::csrf::{self, Token};
use crate::layout::PageError;
use fanout_engine::Error;

/// The largest form the console accepts.
const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;

/// A parsed `application/x-www-form-urlencoded` body.
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    /// Parse `body` (at most [`MAX_FORM_BYTES`]) and check its `csrf` field against the cookie's token.
    pub fn verified(body: &[u8], token: &Token) -> Result<Self, PageError> {
        if body.len() > MAX_FORM_BYTES {
            return Err(Error::BodyTooLarge {
                limit: MAX_FORM_BYTES,
            }
            .into());
        }
        let fields = Fields(form_urlencoded::parse(body).into_owned().collect());
        if !csrf::verify(token, fields.get("csrf")) {
            return Err(PageError::forbidden(
                "this form's CSRF token does not match your session cookie; reload the page and try again",
            ));
        }
        Ok(fields)
    }

    /// The first value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of `name`.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// The namespace the form acts in (`default` when absent).
    pub fn namespace(&self) -> Result<String, PageError> {
        crate::layout::namespace(self.get("ns"))
    }

    /// A checkbox or flag field is set.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("1" | "on" | "true"))
    }

    /// A required field.
    pub fn required(&self, name: &str, what: &str) -> Result<String, PageError> {
        self.text(name).ok_or_else(|| {
            PageError::from(Error::InvalidArgument(format!(
                "{name}: {what} is required"
            )))
        })
    }
}
