//! Random secrets and keyed hashes: owner secrets, generated room ids, and the tags that stand for
//! client addresses in bans and rate limits.

use std::net::IpAddr;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use natter_proto::{OwnerSecret, RoomId};
use natter_room::AddressTag;

/// The system's random source failed, which leaves nothing safe to do but refuse.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the system's random number generator failed")]
pub struct RandomUnavailable;

/// `N` bytes from the system's cryptographic random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomUnavailable> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| RandomUnavailable)?;
    Ok(bytes)
}

/// Unpadded URL-safe base64, the alphabet of every id on the wire.
pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded URL-safe base64.
pub fn from_base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// A fresh owner secret: 32 random bytes.
pub fn owner_secret() -> Result<OwnerSecret, RandomUnavailable> {
    OwnerSecret::try_from(base64url(&random_bytes::<32>()?)).map_err(|_| RandomUnavailable)
}

/// A fresh room id: 16 random bytes, in the 22 characters a room id has.
pub fn room_id() -> Result<RoomId, RandomUnavailable> {
    RoomId::try_from(base64url(&random_bytes::<16>()?)).map_err(|_| RandomUnavailable)
}

/// Turns client addresses into [`AddressTag`]s with a key drawn at start-up and never stored,
/// so the tags held in memory cannot be turned back into addresses by trying every IPv4 address,
/// and mean nothing after a restart.
pub struct AddressHasher {
    key: hmac::Key,
}

impl std::fmt::Debug for AddressHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressHasher")
    }
}

impl AddressHasher {
    /// A hasher with a fresh random key.
    pub fn new() -> Result<Self, RandomUnavailable> {
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()?),
        })
    }

    /// The tag of `ip`. An IPv6 address counts by its /64 network, because one household or phone
    /// gets a whole /64 and can pick any address in it; IPv4-mapped IPv6 counts as the IPv4 address.
    pub fn tag(&self, ip: IpAddr) -> AddressTag {
        self.sign(&network_bytes(ip))
    }

    /// The tag of `ip`'s wider network: its IPv4 /24 or IPv6 /48, what one organisation or
    /// provider's customer usually holds. Budgets that many addresses could otherwise share out
    /// (new room names) are counted by it as well.
    pub fn network_tag(&self, ip: IpAddr) -> AddressTag {
        let mut bytes = match ip {
            IpAddr::V4(v4) => v4.octets()[..3].to_vec(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.octets()[..3].to_vec(),
                None => v6.octets()[..6].to_vec(),
            },
        };
        // Never the same bytes as an address's own tag.
        bytes.push(b'/');
        self.sign(&bytes)
    }

    fn sign(&self, bytes: &[u8]) -> AddressTag {
        let tag = hmac::sign(&self.key, bytes);
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        AddressTag(out)
    }
}

/// The bytes that identify `ip`'s holder: the IPv4 address, or an IPv6 address's /64 prefix.
pub fn network_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets()[..8].to_vec(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_ids_are_well_formed_and_differ() {
        let a = owner_secret().expect("random");
        let b = owner_secret().expect("random");
        assert!(!a.matches(&b));
        assert_ne!(room_id().expect("random"), room_id().expect("random"));
    }

    #[test]
    fn an_ipv6_network_is_one_address_and_mapped_ipv4_is_ipv4() {
        let hasher = AddressHasher::new().expect("random");
        let ip = |text: &str| text.parse::<IpAddr>().expect("address");
        assert_eq!(
            hasher.tag(ip("2001:db8:1:2::1")),
            hasher.tag(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            hasher.tag(ip("2001:db8:1:2::1")),
            hasher.tag(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            hasher.tag(ip("::ffff:192.0.2.7")),
            hasher.tag(ip("192.0.2.7"))
        );
        assert_ne!(hasher.tag(ip("192.0.2.7")), hasher.tag(ip("192.0.2.8")));
        // Networks: an IPv4 /24 and an IPv6 /48, apart from every address's own tag.
        assert_eq!(
            hasher.network_tag(ip("192.0.2.7")),
            hasher.network_tag(ip("192.0.2.200"))
        );
        assert_ne!(
            hasher.network_tag(ip("192.0.2.7")),
            hasher.network_tag(ip("192.0.3.7"))
        );
        assert_eq!(
            hasher.network_tag(ip("2001:db8:1:2::1")),
            hasher.network_tag(ip("2001:db8:1:ffff::9"))
        );
        assert_ne!(
            hasher.network_tag(ip("2001:db8:1::1")),
            hasher.network_tag(ip("2001:db8:2::1"))
        );
        assert_ne!(
            hasher.network_tag(ip("192.0.2.7")),
            hasher.tag(ip("192.0.2.7"))
        );
        // Another key (another server run) gives other tags.
        let other = AddressHasher::new().expect("random");
        assert_ne!(hasher.tag(ip("192.0.2.7")), other.tag(ip("192.0.2.7")));
    }
}
