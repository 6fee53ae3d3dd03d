//! The text of an API key: `fo_` + 32 random base62 characters (~190
//! bits) + a 6-character checksum of what precedes it. The prefix makes a
//! leaked key recognisable (secret scanners, logs); the checksum catches a
//! typo offline, before any lookup. Only the SHA-256 of the text is stored.

use sha2::{Digest, Sha256};

/// Every key starts with this.
pub const PREFIX: &str = "fo_";
const BODY_LEN: usize = 32;
const CHECK_LEN: usize = 6;
/// Characters of the public id after the prefix (`fo_AbCdEfGh`).
const ID_LEN: usize = 8;
/// Length of a key's text.
pub const KEY_LEN: usize = PREFIX.len() + BODY_LEN + CHECK_LEN;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly made key: its text (shown once) and what is stored.
pub struct NewKey {
    pub text: String,
    pub id: String,
    pub hash: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewKey({}…)", self.id)
    }
}

/// A new random key.
pub fn generate() -> NewKey {
    use rand::Rng;
    let mut rng = rand::rng();
    let body: String = (0..BODY_LEN)
        .map(|_| BASE62[rng.random_range(0..BASE62.len())] as char)
        .collect();
    let head = format!("{PREFIX}{body}");
    let text = format!("{head}{}", checksum(&head));
    NewKey {
        id: public_id(&text),
        hash: hash_hex(&text),
        text,
    }
}

/// `fo_` + the first 8 characters: safe to show and log.
pub fn public_id(text: &str) -> String {
    text.chars().take(PREFIX.len() + ID_LEN).collect()
}

/// Why `text` cannot be a key, or `Ok` if its shape and checksum hold.
pub fn check(text: &str) -> Result<(), &'static str> {
    if !text.starts_with(PREFIX) {
        return Err("it does not start with fo_ (is it a Fanout API key?)");
    }
    if text.len() != KEY_LEN
        || !text[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
    {
        return Err("expected fo_ and 38 letters or digits");
    }
    let (head, sum) = text.split_at(KEY_LEN - CHECK_LEN);
    if checksum(head) != sum {
        return Err("its checksum does not match (a typo or a truncated copy?)");
    }
    Ok(())
}

/// SHA-256 of the key's text.
pub fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// [`digest`] as lowercase hex: what the store keeps.
pub fn hash_hex(text: &str) -> String {
    digest(text).iter().map(|b| format!("{b:02x}")).collect()
}

/// [`hash_hex`] read back.
pub fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn checksum(head: &str) -> String {
    let d = Sha256::digest(head.as_bytes());
    let mut n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
    let mut out = [b'0'; CHECK_LEN];
    for c in out.iter_mut().rev() {
        *c = BASE62[n % 62];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_checks_and_hashes_to_what_is_stored() {
        let k = generate();
        assert_eq!(k.text.len(), KEY_LEN);
        assert!(k.text.starts_with("fo_"));
        assert_eq!(check(&k.text), Ok(()));
        assert_eq!(k.id, &k.text[..11]);
        assert_eq!(parse_hex(&k.hash), Some(digest(&k.text)));
        assert_ne!(generate().text, k.text);
    }

    #[test]
    fn a_typo_is_caught_offline() {
        let k = generate().text;
        let mut typo = k.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap_or_default();
        assert!(check(&typo).unwrap_err().contains("checksum"));
        assert!(check(&k[..k.len() - 1]).is_err());
        assert!(check("sk_live_abc").unwrap_err().contains("fo_"));
        assert!(check(&format!("{}!", &k[..k.len() - 1])).is_err());
    }
}
