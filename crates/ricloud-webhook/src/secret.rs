//! The shared secret, kept out of logs and wiped from memory on drop.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// The shared secret of a webhook config, as the API hands it out.
///
/// The API keys HMAC-SHA256 with the secret's UTF-8 bytes, so a `Secret` is
/// those bytes. It cannot be empty (an empty key would let anyone sign), its
/// `Debug` prints `[redacted]`, it has no `Display`, and its bytes are
/// overwritten with zeros when it is dropped.
///
/// ```
/// use ricloud_webhook::Secret;
///
/// let secret = Secret::new("EZVNcphl95WzskoobnuXh_28qCZG_blz")?;
/// assert_eq!(format!("{secret:?}"), "[redacted]");
/// assert!(Secret::new("").is_err());
/// # Ok::<(), ricloud_webhook::SecretError>(())
/// ```
#[derive(Clone)]
pub struct Secret {
    // `Zeroizing<Vec<u8>>` wipes the spare capacity too.
    bytes: Zeroizing<Vec<u8>>,
}

impl Secret {
    /// Takes ownership of the secret's bytes.
    ///
    /// Pass an owned `String` or `Vec<u8>` so that no copy outlives the
    /// `Secret`: the buffer moved in is the one that gets wiped.
    ///
    /// # Errors
    /// [`SecretError::Empty`] when there are no bytes: an empty key is refused
    /// so that nothing can be built that accepts deliveries without a secret.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let mut bytes = bytes.into();
        if bytes.is_empty() {
            bytes.zeroize();
            return Err(SecretError::Empty);
        }
        Ok(Self {
            bytes: Zeroizing::new(bytes),
        })
    }

    /// The key bytes; crate-private so the secret cannot leak through the API.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a [`Secret`] or a [`Verifier`](crate::Verifier) could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret has no bytes.
    #[error("webhook secret is empty")]
    Empty,
    /// A verifier was asked for with no secret at all.
    #[error("a verifier needs at least one webhook secret")]
    NoSecrets,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::new("hunter2-hunter2").expect("non-empty");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }

    #[test]
    fn empty_is_refused() {
        assert_eq!(Secret::new("").err(), Some(SecretError::Empty));
        assert_eq!(Secret::new(Vec::new()).err(), Some(SecretError::Empty));
    }

    #[test]
    fn keeps_the_bytes_it_was_given() {
        let secret = Secret::new("s3cr3t with spaces & ünïcode").expect("non-empty");
        assert_eq!(secret.expose(), "s3cr3t with spaces & ünïcode".as_bytes());
    }
}
