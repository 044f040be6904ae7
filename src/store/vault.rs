//! Secrets at rest (admin writes and snapshot rebuilds, never the request path): Dify app keys and
//! HS256 secrets are sealed with AES-256-GCM under `store.encryption_key`, each bound to the row it
//! belongs to; gateway API keys are kept only as a SHA-256 hash of a 256-bit random key. A reader
//! of the database learns no key. Pure apart from the system random source.

pub use crate::admit::auth::apikey::{API_KEY_PREFIX, api_key_hash};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Why a sealed value could not be opened (a wrong key, or a value changed or moved in the store).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a secret in the store could not be decrypted (wrong store.encryption_key, or the row was changed)")]
pub struct Undecryptable;

/// Seals and opens secrets under the store's key.
pub struct Vault {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault([redacted])")
    }
}

impl Vault {
    /// A vault under a 32-byte key; `None` for any other length.
    pub fn new(key: &[u8]) -> Option<Self> {
        let key = UnboundKey::new(&AES_256_GCM, key).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    /// `secret` sealed for the row named `binding` (nonce, then ciphertext and tag).
    pub fn seal(&self, binding: &str, secret: &str) -> Result<Vec<u8>, Undecryptable> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| Undecryptable)?;
        let mut out = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(binding.as_bytes()),
                &mut out,
            )
            .map_err(|_| Undecryptable)?;
        let mut sealed = nonce.to_vec();
        sealed.append(&mut out);
        Ok(sealed)
    }

    /// The secret sealed for `binding`.
    pub fn open(&self, binding: &str, sealed: &[u8]) -> Result<String, Undecryptable> {
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN).ok_or(Undecryptable)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Undecryptable)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(binding.as_bytes()),
                &mut body,
            )
            .map_err(|_| Undecryptable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| Undecryptable)
    }

    /// A new gateway API key: `dgw-` and 256 random bits, base64url.
    pub fn new_api_key(&self) -> Result<String, Undecryptable> {
        use base64::Engine;
        let mut raw = [0u8; 32];
        self.rng.fill(&mut raw).map_err(|_| Undecryptable)?;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        Ok(format!("{API_KEY_PREFIX}{text}"))
    }

    /// A new random id (8 bytes, hex).
    pub fn new_id(&self) -> Result<String, Undecryptable> {
        let mut raw = [0u8; 8];
        self.rng.fill(&mut raw).map_err(|_| Undecryptable)?;
        Ok(hex::encode(raw))
    }
}

pub use crate::secret::last4;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_row_and_key() {
        let v = Vault::new(&[7u8; 32]).unwrap();
        let sealed = v.seal("app:acme:writer", "app-secret-key").unwrap();
        assert!(
            !sealed.windows(14).any(|w| w == b"app-secret-key"),
            "plain text in the sealed value"
        );
        assert_eq!(v.open("app:acme:writer", &sealed).unwrap(), "app-secret-key");
        assert_eq!(
            v.open("app:globex:writer", &sealed),
            Err(Undecryptable),
            "moved to another row"
        );
        assert_eq!(
            Vault::new(&[8u8; 32]).unwrap().open("app:acme:writer", &sealed),
            Err(Undecryptable)
        );
        let again = v.seal("app:acme:writer", "app-secret-key").unwrap();
        assert_ne!(sealed, again, "a fresh nonce each time");
        assert!(Vault::new(&[0u8; 31]).is_none());
    }

    #[test]
    fn api_keys_are_long_random_and_kept_as_hashes() {
        let v = Vault::new(&[7u8; 32]).unwrap();
        let (a, b) = (v.new_api_key().unwrap(), v.new_api_key().unwrap());
        assert!(a.starts_with("dgw-") && a.len() == 4 + 43, "{a}");
        assert_ne!(a, b);
        assert_ne!(api_key_hash(&a), api_key_hash(&b));
        assert_eq!(last4("dgw-abcdefgh"), "efgh");
    }
}
