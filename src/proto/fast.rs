//! The fast extension's (BEP 6) allowed-fast set: the pieces a peer may request from us even
//! while we choke it, so that a newcomer with nothing to trade gets its first pieces at once.
//!
//! The set is a function of the peer's address (its /24 for IPv4) and the info-hash, so a peer
//! cannot collect a fresh set by reconnecting from another port or address of the same network.

use std::net::IpAddr;

use sha1::{Digest, Sha1};

/// The first `k` pieces of the allowed-fast set for a peer at `ip` in a torrent of `pieces`
/// pieces and info-hash `info_hash`, by BEP 6's algorithm: hash the masked address and the
/// info-hash, read the digest as five big-endian words, each one modulo `pieces` a piece;
/// hash again until `k` distinct pieces are found. `k` is capped at `pieces`.
///
/// BEP 6 defines the input for IPv4 only; for IPv6 we hash the /48 prefix in the same way
/// (an assumption of ours: the set then depends on the site, not the host).
pub fn allowed_fast_set(ip: IpAddr, info_hash: &[u8; 20], pieces: u32, k: usize) -> Vec<u32> {
    let k = k.min(pieces as usize);
    let mut out = Vec::with_capacity(k);
    if k == 0 {
        return out;
    }
    let mut x: Vec<u8> = match ip {
        IpAddr::V4(v4) => {
            let mut o = v4.octets();
            o[3] = 0;
            o.to_vec()
        }
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[6..].fill(0);
            o.to_vec()
        }
    };
    x.extend_from_slice(info_hash);
    while out.len() < k {
        let digest: [u8; 20] = Sha1::digest(&x).into();
        for word in digest.chunks_exact(4) {
            if out.len() >= k {
                break;
            }
            let y = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            let index = y % pieces;
            if !out.contains(&index) {
                out.push(index);
            }
        }
        x = digest.to_vec();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_bep_6_example() {
        // BEP 6: 80.4.4.200, info-hash of 0xaa bytes, 1313 pieces.
        let ip = IpAddr::from([80, 4, 4, 200]);
        let h = [0xaa; 20];
        assert_eq!(
            allowed_fast_set(ip, &h, 1313, 7),
            [1059, 431, 808, 1217, 287, 376, 1188]
        );
        assert_eq!(
            allowed_fast_set(ip, &h, 1313, 9),
            [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
        // The host part of the address does not matter; the network does.
        let same_net = IpAddr::from([80, 4, 4, 1]);
        assert_eq!(
            allowed_fast_set(same_net, &h, 1313, 9),
            allowed_fast_set(ip, &h, 1313, 9)
        );
        let other = IpAddr::from([80, 4, 5, 200]);
        assert_ne!(
            allowed_fast_set(other, &h, 1313, 9),
            allowed_fast_set(ip, &h, 1313, 9)
        );
    }

    #[test]
    fn small_torrents_get_every_piece_at_most_once() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let mut set = allowed_fast_set(ip, &[1; 20], 3, 10);
        set.sort_unstable();
        assert_eq!(set, [0, 1, 2]);
        assert!(allowed_fast_set(ip, &[1; 20], 0, 10).is_empty());
    }
}
