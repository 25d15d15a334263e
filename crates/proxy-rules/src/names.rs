//! Chain and set names, built the way kube-proxy's nftables mode builds them:
//! `<prefix><HASH>-<namespace>/<service>/<proto>/<port-name>[__<ip>/<port>]`,
//! where HASH is the first 8 characters of the base32 of a sha256 of the rest.
//! The hash keeps names unique and visually distinct; the rest keeps them readable.

use std::net::Ipv4Addr;

/// nftables limits names to 256 bytes; kube-proxy reserves 16 for the prefix.
const NAME_BASE_MAX: usize = 256 - 16;

/// `HASH-name`, truncated (with "...") if it would not fit in a chain name.
pub fn hash_and_truncate(name: &str) -> String {
    let digest = sha256(name.as_bytes());
    let mut out = base32_prefix8(&digest);
    out.push('-');
    out.push_str(name);
    if out.len() > NAME_BASE_MAX {
        // Names are ASCII (k8s names, protocols, IPs), so byte slicing is safe;
        // fall back to char boundaries anyway so a bad input cannot panic.
        let mut cut = NAME_BASE_MAX - 3;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// `ns/svc/proto/portname`: the identity of one service port.
pub fn service_port_base(ns: &str, svc: &str, proto: &str, port_name: &str) -> String {
    format!("{ns}/{svc}/{proto}/{port_name}")
}

/// `ns/svc/proto/portname__ip/port`: the identity of one endpoint of a service port.
pub fn endpoint_base(service_port_base: &str, ip: Ipv4Addr, port: u16) -> String {
    format!("{service_port_base}__{ip}/{port}")
}

/// The first 8 base32 (RFC 4648, standard alphabet) characters of `bytes`,
/// i.e. the encoding of its first 40 bits.
fn base32_prefix8(bytes: &[u8; 32]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bits = bytes[..5]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    (0..8)
        .map(|i| ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize] as char)
        .collect()
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 (FIPS 180-4). Small and self-contained so the crate needs no
/// crypto dependency; only used for naming, never for security.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());

    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (slot, v) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *slot = slot.wrapping_add(v);
        }
    }
    let mut out = [0u8; 32];
    for (i, v) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_known_vectors() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Two-block message (padding crosses a block boundary).
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn base32_prefix_matches_rfc4648() {
        // base32("hello") = "NBSWY3DP"; pad the 5 bytes into a 32-byte buffer.
        let mut buf = [0u8; 32];
        buf[..5].copy_from_slice(b"hello");
        assert_eq!(base32_prefix8(&buf), "NBSWY3DP");
    }

    #[test]
    fn names_match_kube_proxy() {
        // Examples documented in kube-proxy's nftables proxier.
        let svc = service_port_base("ns1", "svc1", "tcp", "p80");
        assert_eq!(hash_and_truncate(&svc), "ULMVA6XW-ns1/svc1/tcp/p80");
        let ep = endpoint_base(&svc, Ipv4Addr::new(10, 180, 0, 1), 80);
        assert_eq!(
            hash_and_truncate(&ep),
            "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
    }

    #[test]
    fn long_names_are_truncated() {
        let long = "x".repeat(400);
        let name = hash_and_truncate(&long);
        assert_eq!(name.len(), NAME_BASE_MAX);
        assert!(name.ends_with("..."));
    }
}
