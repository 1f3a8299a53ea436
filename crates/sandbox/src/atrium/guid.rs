//! Atrium-shaped guids (`MBR-` + 8-4-4-4-12 hex), random or derived from text.

use rand::Rng;
use uuid::Uuid;

/// A 64-bit hash of `parts` that is the same on every run and platform
/// (FNV-1a, then a SplitMix64 finaliser to spread the bits).
pub(crate) fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0x1f)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let mut z = hash.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A guid derived from `parts`: the same parts always give the same guid.
pub(crate) fn stable_guid(prefix: &str, parts: &[&str]) -> String {
    let high = stable_hash(parts);
    let low = stable_hash(&[&high.to_string(), "low"]);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    format_guid(prefix, bytes)
}

pub(crate) fn random_guid(prefix: &str, rng: &mut impl Rng) -> String {
    format_guid(prefix, rng.r#gen())
}

fn format_guid(prefix: &str, bytes: [u8; 16]) -> String {
    format!("{prefix}-{}", Uuid::from_bytes(bytes).hyphenated())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_guids_repeat_and_differ_by_input() {
        let a = stable_guid("ACT", &["MBR-1", "0"]);
        assert_eq!(a, stable_guid("ACT", &["MBR-1", "0"]));
        assert_ne!(a, stable_guid("ACT", &["MBR-1", "1"]));
        assert_eq!(a.len(), "ACT-".len() + 36);
        assert!(a.starts_with("ACT-"));
    }
}
