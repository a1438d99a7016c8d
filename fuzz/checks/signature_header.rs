//! The `signature_header` check: arbitrary bytes as a `Ricloud-Signature`
//! value.
//!
//! Shared by `fuzz/fuzz_targets/signature_header.rs` and the corpus replay
//! test of the core crate; it uses only the core crate's public API.

use ricloud_webhook::{HeaderError, SignatureHeader};

/// Parsing never panics; whatever parses formats back to exactly the bytes
/// it came from (the parser accepts one canonical spelling per value) and
/// re-parses to the same value.
pub(crate) fn check(data: &[u8]) {
    let parsed = SignatureHeader::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            text.parse::<SignatureHeader>(),
            parsed,
            "FromStr differs from parse"
        );
    }
    match parsed {
        Ok(header) => {
            let text = header.to_string();
            assert_eq!(
                text.as_bytes(),
                data,
                "an accepted header does not format back to the same bytes"
            );
            assert_eq!(SignatureHeader::parse(text.as_bytes()), Ok(header));
            assert_eq!(
                SignatureHeader::new(header.timestamp(), *header.signature()),
                header
            );
        }
        Err(error) => {
            // The length bound comes first, then emptiness.
            match error {
                HeaderError::TooLong { len } => {
                    assert_eq!(len, data.len());
                    assert!(len > SignatureHeader::MAX_LEN);
                }
                HeaderError::Empty => assert!(data.is_empty()),
                _ => assert!(!data.is_empty() && data.len() <= SignatureHeader::MAX_LEN),
            }
            // Building the message must not panic either.
            let message = error.to_string();
            assert!(!message.is_empty());
        }
    }
}
