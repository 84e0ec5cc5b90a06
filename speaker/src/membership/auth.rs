//! The shared key that authenticates every membership datagram, and its rotation. Pure: the
//! caller passes the key bytes (from a Kubernetes Secret) and the time.
//!
//! Each datagram carries the 4-byte id of the key that sealed it and an HMAC-SHA256 tag. When the
//! key is replaced, datagrams are still *sealed with the old one* for a window, so that peers
//! that have not read the new Secret yet keep hearing this node, and the old key keeps *opening*
//! datagrams for two windows, so that this node keeps hearing peers that read it up to a window
//! later and still seal with the old one. Nodes that get the new key within one window of each
//! other therefore never lose each other; the window must outlast the Secret's propagation.

use std::fmt;
use std::time::Duration;

use hmac::digest::{Key as BlockKey, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// Length of the HMAC-SHA256 tag that ends every datagram.
pub const TAG_LEN: usize = 32;
/// Length of the key id at the start of every datagram.
pub const KEY_ID_LEN: usize = 4;

type HmacSha256 = Hmac<Sha256>;

/// One shared key, ready to seal and open.
#[derive(Clone)]
pub struct Key {
    id: [u8; KEY_ID_LEN],
    mac: HmacSha256,
}

impl Key {
    /// Prepares `secret` (any length; empty means "no secret", which only guards against
    /// corruption).
    pub fn new(secret: &[u8]) -> Self {
        // HMAC's own key normalisation (RFC 2104 §2): keys longer than the block are hashed,
        // shorter ones are zero-padded. Done here so that construction cannot fail.
        let mut block = BlockKey::<HmacSha256>::default();
        if secret.len() > block.len() {
            let digest = Sha256::digest(secret);
            block[..digest.len()].copy_from_slice(&digest);
        } else {
            block[..secret.len()].copy_from_slice(secret);
        }
        let digest = Sha256::new()
            .chain_update(b"ferrolb membership key id\0")
            .chain_update(secret)
            .finalize();
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self {
            id,
            mac: <HmacSha256 as KeyInit>::new(&block),
        }
    }

    /// The id that names this key on the wire (a hash of it; reveals nothing useful).
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        self.id
    }

    /// The tag of `data`.
    pub fn tag(&self, data: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the tag of `data` (constant time).
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.id;
        write!(f, "Key({a:02x}{b:02x}{c:02x}{d:02x})")
    }
}

/// The current key and, during a rotation, the previous one.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: Key,
    /// The key being replaced, when, and the rotation window.
    previous: Option<(Key, Instant, Duration)>,
}

impl Keyring {
    /// A keyring holding only `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            current: Key::new(secret),
            previous: None,
        }
    }

    /// Replaces the key: until `now + window` datagrams are sealed with the old key, until
    /// `now + 2 × window` both keys open them, then only the new one. Setting the current key
    /// again changes nothing.
    pub fn rotate(&mut self, secret: &[u8], now: Instant, window: Duration) {
        let next = Key::new(secret);
        if next.id == self.current.id {
            return;
        }
        let old = std::mem::replace(&mut self.current, next);
        self.previous = Some((old, now, window));
    }

    /// The key that seals datagrams at `now`.
    pub fn sealing(&self, now: Instant) -> &Key {
        match &self.previous {
            Some((old, since, window)) if now < *since + *window => old,
            _ => &self.current,
        }
    }

    /// The key named `id` that may open datagrams at `now`.
    pub fn opening(&self, id: [u8; KEY_ID_LEN], now: Instant) -> Option<&Key> {
        if self.current.id == id {
            return Some(&self.current);
        }
        match &self.previous {
            Some((old, since, window)) if old.id == id && now < *since + *window * 2 => Some(old),
            _ => None,
        }
    }
}
