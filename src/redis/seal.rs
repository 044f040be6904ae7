//! Authenticates what the gateway keeps in Redis (cache entries, id owners, notices): every value is
//! stored behind an HMAC-SHA256 tag over its Redis key and its bytes, under `redis.hmac_key`, so a
//! value written by anyone with access to Redis, or moved from another key, is never believed. Pure.

use ring::hmac;

/// Length of the tag in front of every sealed value.
const TAG: usize = 32;

/// Seals and opens values under one key.
pub struct Sealer(hmac::Key);

impl Sealer {
    /// A sealer under `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn tag(&self, key: &str, value: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(key.as_bytes());
        ctx.update(&[0]);
        ctx.update(value);
        ctx.sign()
    }

    /// `value` as stored at `key`: its tag, then the value.
    pub fn seal(&self, key: &str, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(TAG + value.len());
        out.extend_from_slice(self.tag(key, value).as_ref());
        out.extend_from_slice(value);
        out
    }

    /// The value stored at `key`, when its tag verifies (compared in constant time).
    pub fn open<'a>(&self, key: &str, sealed: &'a [u8]) -> Option<&'a [u8]> {
        let (tag, value) = sealed.split_at_checked(TAG)?;
        let mut ctx_value = Vec::with_capacity(key.len() + 1 + value.len());
        ctx_value.extend_from_slice(key.as_bytes());
        ctx_value.push(0);
        ctx_value.extend_from_slice(value);
        hmac::verify(&self.0, &ctx_value, tag).ok().map(|()| value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_what_it_sealed_at_that_key_opens() {
        let s = Sealer::new(b"0123456789abcdef0123456789abcdef");
        let sealed = s.seal("own:task:1", b"{\"tenant\":\"acme\"}");
        assert_eq!(s.open("own:task:1", &sealed), Some(&b"{\"tenant\":\"acme\"}"[..]));
        assert_eq!(s.open("own:task:2", &sealed), None, "moved to another key");
        let mut forged = sealed.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(s.open("own:task:1", &forged), None, "changed value");
        assert_eq!(
            s.open("own:task:1", b"{\"tenant\":\"evil\"}"),
            None,
            "written without a tag"
        );
        let other = Sealer::new(b"another-secret-another-secret-0000");
        assert_eq!(other.open("own:task:1", &sealed), None, "another secret");
    }
}
