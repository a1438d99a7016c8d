//! HMAC-SHA256 (RFC 2104) over sha2's compression function, keyed once.
//!
//! The `hmac` crate computes the same function; this one exists because a
//! verifier keys once and tags every delivery, and two things follow from
//! keeping the keyed state itself:
//!
//! - **It is wiped.** The keyed state is the two SHA-256 chaining values
//!   after the key's inner and outer pad blocks: whoever reads them can sign
//!   like the secret. They are overwritten with zeros on drop, as
//!   [`Secret`](crate::Secret) is; `hmac` 0.12's state cannot be.
//! - **A tag costs the compressions and little else.** Per message, the
//!   inner chaining value (32 bytes) is copied, the message is hashed
//!   through `block-buffer` (the buffer sha2 uses, which hands whole blocks
//!   of the input to the compression function without a copy), or, when it
//!   fits in two blocks with its padding, copied into them on the stack and
//!   compressed in one call; the outer hash is one block built on the
//!   stack. `hmac`'s pre-keyed state clones and finalises two whole
//!   hashers: about 12 ns more per message, 7 % of a 64-byte delivery's
//!   HMAC, and the two-block path about 4 ns less again
//!   (`benches/paired.rs`, BENCHMARKS.md).
//!
//! Nothing here branches on the key or the message's bytes: SHA-256's
//! compression is data-independent, and the only branches are on lengths.
//! The unit tests check it against the RFC 4231 vectors and against the
//! `hmac` crate on random keys and messages cut into random pieces.

use block_buffer::generic_array::typenum::U64;
use block_buffer::generic_array::GenericArray;
use block_buffer::{BlockBuffer, Eager};
use zeroize::Zeroize;

/// SHA-256's block length in bytes.
const BLOCK: usize = 64;

/// The longest message hashed from two blocks on the stack: two blocks
/// less the padding byte and the 8-byte length.
const SHORT: usize = 2 * BLOCK - 9;

/// SHA-256's initial chaining value (FIPS 180-4, 5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// An HMAC-SHA256 key, ready to tag messages; wiped on drop.
#[derive(Clone)]
pub(crate) struct Keyed {
    /// The chaining value after `key ^ ipad`.
    inner: [u32; 8],
    /// The chaining value after `key ^ opad`.
    outer: [u32; 8],
}

impl Keyed {
    /// Keys HMAC with `key`: hashed first when longer than a block, then
    /// padded with zeros to a block (RFC 2104). Every copy this makes of
    /// the key's bytes is wiped once hashed: the padded key, its two pad
    /// blocks, and for a key longer than a block its last partial block and
    /// the chaining values of its hash (the `hmac` crate leaves those in
    /// sha2's hasher). The API's secrets are 32 characters, under a block.
    pub(crate) fn new(key: &[u8]) -> Self {
        let mut block = [0u8; BLOCK];
        match block.get_mut(..key.len()) {
            Some(head) => head.copy_from_slice(key),
            None => {
                let mut digest = sha256(key);
                block[..32].copy_from_slice(&digest);
                digest.zeroize();
            }
        }
        let keyed = Self {
            inner: pad_block(&block, 0x36),
            outer: pad_block(&block, 0x5c),
        };
        block.zeroize();
        keyed
    }

    /// The tag of the message made of the pieces of `head`, then those of
    /// `rest`.
    pub(crate) fn tag<B: AsRef<[u8]>>(&self, head: &[&[u8]], rest: &[B]) -> [u8; 32] {
        let len = head.iter().map(|p| p.len()).sum::<usize>()
            + rest.iter().map(|p| p.as_ref().len()).sum::<usize>();
        let state = if len <= SHORT {
            self.inner_short(head, rest, len)
        } else {
            self.inner_long(head, rest)
        };
        self.outer(&state)
    }

    /// The inner hash of a message of at most [`SHORT`] bytes: copied with
    /// its padding into two blocks on the stack ([`fill`]), compressed in
    /// one call.
    fn inner_short<B: AsRef<[u8]>>(&self, head: &[&[u8]], rest: &[B], len: usize) -> [u32; 8] {
        let mut blocks = [GenericArray::<u8, U64>::default(); 2];
        let pieces = head.iter().copied().chain(rest.iter().map(AsRef::as_ref));
        // The key's block came first.
        let used = fill(&mut blocks, pieces, len, ((BLOCK + len) as u64) * 8);
        let mut state = self.inner;
        sha2::compress256(&mut state, &blocks[..used]);
        state
    }

    fn inner_long<B: AsRef<[u8]>>(&self, head: &[&[u8]], rest: &[B]) -> [u32; 8] {
        let mut state = self.inner;
        let mut buffer = BlockBuffer::<U64, Eager>::default();
        // Bytes hashed so far, the key's block included.
        let mut len = BLOCK as u64;
        let mut absorb = |part: &[u8]| {
            len = len.wrapping_add(part.len() as u64);
            buffer.digest_blocks(part, |blocks| sha2::compress256(&mut state, blocks));
        };
        for part in head {
            absorb(part);
        }
        for part in rest {
            absorb(part.as_ref());
        }
        buffer.len64_padding_be(len.wrapping_mul(8), |block| {
            sha2::compress256(&mut state, std::slice::from_ref(block));
        });
        state
    }

    fn outer(&self, state: &[u32; 8]) -> [u8; 32] {
        // The outer hash: its key block, then one block holding the inner
        // hash, the padding byte and the length (64 + 32 bytes, in bits).
        let mut block = [0u8; BLOCK];
        write_words(&mut block[..32], state);
        block[32] = 0x80;
        block[BLOCK - 8..].copy_from_slice(&((BLOCK as u64 + 32) * 8).to_be_bytes());
        let mut outer = self.outer;
        compress_blocks(&mut outer, &block);
        let mut tag = [0u8; 32];
        write_words(&mut tag, &outer);
        tag
    }
}

impl Drop for Keyed {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

/// The chaining value after one block: `key ^ pad` in every byte.
fn pad_block(key: &[u8; BLOCK], pad: u8) -> [u32; 8] {
    let mut block = *key;
    for byte in &mut block {
        *byte ^= pad;
    }
    let mut state = IV;
    compress_blocks(&mut state, &block);
    block.zeroize();
    state
}

/// SHA-256 of `data` (a key longer than a block), leaving no copy of its
/// bytes but the digest: its whole blocks are compressed where they are,
/// the last partial one is copied with the padding into blocks on the
/// stack, wiped after, as the chaining values are.
fn sha256(data: &[u8]) -> [u8; 32] {
    let mut state = IV;
    let (whole, tail) = data.split_at(data.len() - data.len() % BLOCK);
    compress_blocks(&mut state, whole);
    let mut last = [GenericArray::<u8, U64>::default(); 2];
    let bits = (data.len() as u64).wrapping_mul(8);
    let used = fill(&mut last, std::iter::once(tail), tail.len(), bits);
    sha2::compress256(&mut state, &last[..used]);
    for block in &mut last {
        block.as_mut_slice().zeroize();
    }
    let mut digest = [0u8; 32];
    write_words(&mut digest, &state);
    state.zeroize();
    digest
}

/// Copies `pieces`, `len` bytes in all (at most [`SHORT`]), into the two
/// zeroed `blocks`, each piece cut at their boundary and copied straight
/// into the blocks sha2 takes (a flat buffer copied again cost about 1 %
/// of a 64-byte delivery's verification), then ends them with SHA-256's
/// padding for a message of `bits` bits in all: the `1` bit, zeros, the
/// length in the last 8 bytes of one block or, when they do not fit, of
/// two. Returns the blocks used.
fn fill<'a>(
    blocks: &mut [GenericArray<u8, U64>; 2],
    pieces: impl Iterator<Item = &'a [u8]>,
    len: usize,
    bits: u64,
) -> usize {
    let [first, second] = blocks;
    let mut at = 0;
    for piece in pieces {
        let split = piece.len().min(BLOCK.saturating_sub(at));
        let (low, high) = piece.split_at(split);
        if let Some(dst) = first.get_mut(at..at + low.len()) {
            dst.copy_from_slice(low);
        }
        let from = (at + split).saturating_sub(BLOCK);
        second[from..from + high.len()].copy_from_slice(high);
        at += piece.len();
    }
    match len.checked_sub(BLOCK) {
        Some(i) => second[i] = 0x80,
        None => first[len] = 0x80,
    }
    let used = if len < BLOCK - 8 { 1 } else { 2 };
    blocks[used - 1][BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
    used
}

/// Compresses each whole block of `bytes`, where it is.
fn compress_blocks(state: &mut [u32; 8], bytes: &[u8]) {
    for chunk in bytes.chunks_exact(BLOCK) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(chunk)));
    }
}

/// The chaining value as SHA-256 outputs it: big-endian words.
#[inline(always)]
fn write_words(out: &mut [u8], words: &[u32; 8]) {
    for (bytes, word) in out.chunks_exact_mut(4).zip(words) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc_4231_vectors() {
        // Test cases 1, 2, 6 and 7: a short key, a key shorter than the
        // output, and a key longer than a block with a short and a long
        // message.
        let long = b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.";
        for (key, data, expected) in [
            (
                &[0x0b; 20][..],
                &b"Hi There"[..],
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                &[0xaa; 131],
                long,
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ] {
            let keyed = Keyed::new(key);
            assert_eq!(hex(&keyed.tag(&[data], &[] as &[&[u8]])), expected);
            // The same message cut anywhere gives the same tag.
            for cut in 0..=data.len() {
                let (a, b) = data.split_at(cut);
                assert_eq!(hex(&keyed.tag(&[a], &[b])), expected, "cut at {cut}");
            }
        }
    }

    #[test]
    fn keys_around_the_block_length() {
        // Up to 64 bytes a key is used as it is, from 65 hashed first: its
        // last partial block in one block with the padding or in two.
        for len in 0..=300 {
            let key: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let ours = Keyed::new(&key).tag(&[b"message"], &[] as &[&[u8]]);
            let mut theirs = Hmac::<Sha256>::new_from_slice(&key).expect("any length");
            theirs.update(b"message");
            assert_eq!(
                ours[..],
                theirs.finalize().into_bytes()[..],
                "key of {len} bytes"
            );
        }
    }

    #[test]
    fn key_digest_is_sha256() {
        let data: Vec<u8> = (0..300).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..=300 {
            assert_eq!(
                sha256(&data[..len])[..],
                Sha256::digest(&data[..len])[..],
                "{len} bytes"
            );
        }
    }

    #[test]
    fn every_message_length_across_both_paths() {
        // One block and two on the stack (up to 55 and up to 119 bytes),
        // then the block buffer; each length as one piece and as two.
        let key = b"EZVNcphl95WzskoobnuXh_28qCZG_blz";
        let keyed = Keyed::new(key);
        let message: Vec<u8> = (0..300).map(|i| (i * 11 + 5) as u8).collect();
        for len in 0..=300 {
            let message = &message[..len];
            let mut theirs = Hmac::<Sha256>::new_from_slice(key).expect("any length");
            theirs.update(message);
            let theirs = theirs.finalize().into_bytes();
            assert_eq!(
                keyed.tag(&[message], &[] as &[&[u8]])[..],
                theirs[..],
                "{len} bytes"
            );
            let (a, b) = message.split_at(len / 3);
            assert_eq!(keyed.tag(&[a], &[b])[..], theirs[..], "{len} bytes in two");
        }
    }

    proptest! {
        /// Any key, any message, cut into any pieces (lengths across block
        /// and padding boundaries), tags as the `hmac` crate does.
        #[test]
        fn agrees_with_the_hmac_crate(
            key in proptest::collection::vec(any::<u8>(), 1..200),
            head in proptest::collection::vec(any::<u8>(), 0..70),
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..5),
        ) {
            let ours = Keyed::new(&key).tag(&[&head], &pieces);
            let mut theirs = Hmac::<Sha256>::new_from_slice(&key).expect("any length");
            theirs.update(&head);
            for piece in &pieces {
                theirs.update(piece);
            }
            prop_assert_eq!(&ours[..], &theirs.finalize().into_bytes()[..]);
        }
    }
}
