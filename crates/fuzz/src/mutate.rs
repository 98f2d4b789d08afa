//! Byte-level mutations, the same for every file format: bit flips, "interesting" bytes and
//! little-endian integers (0, max, 2^31, 2^60, ...) written at random offsets, truncation,
//! chunk deletion, duplication and overwrite, random insertions, and splicing with another
//! seed. Sizes stay bounded (an input never grows past [`MAX_INPUT`]).

use fastrand::Rng;

/// Largest input a mutation may produce, in bytes.
pub const MAX_INPUT: usize = 4 << 20;

/// Bytes that often sit on validation edges.
const INTERESTING_U8: [u8; 9] = [0, 1, 0x7f, 0x80, 0xff, b'{', b'"', b'\n', b'0'];

/// Integers that overflow, truncate or sign-flip in length arithmetic (little-endian).
const INTERESTING_U64: [u64; 12] = [
    0,
    1,
    0x7f,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    1 << 60,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX,
];

/// A random `usize` in `0..n` (`0` when `n == 0`).
fn below(rng: &mut Rng, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        rng.usize(..n)
    }
}

/// A random chunk `start..end` inside `data` (empty when `data` is).
fn chunk(rng: &mut Rng, len: usize) -> (usize, usize) {
    let start = below(rng, len);
    let max = (len - start).min(if rng.bool() { 8 } else { 4096 });
    let end = start + below(rng, max + 1);
    (start, end)
}

/// Applies one random byte-level mutation to `data`; `other` is another seed to splice with.
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.u8(..10) {
        0 if len > 0 => {
            let i = below(rng, len);
            data[i] ^= 1 << rng.u8(..8);
        }
        1 if len > 0 => {
            let i = below(rng, len);
            data[i] = INTERESTING_U8[below(rng, INTERESTING_U8.len())];
        }
        2 if len > 0 => {
            let value = INTERESTING_U64[below(rng, INTERESTING_U64.len())];
            let width = [2, 4, 8][below(rng, 3)];
            let at = below(rng, len);
            let bytes = value.to_le_bytes();
            let n = width.min(len - at);
            data[at..at + n].copy_from_slice(&bytes[..n]);
        }
        3 => data.truncate(below(rng, len + 1)),
        4 if len > 0 => {
            let (s, e) = chunk(rng, len);
            data.drain(s..e);
        }
        5 if len > 0 => {
            let (s, e) = chunk(rng, len);
            let piece = data[s..e].to_vec();
            let at = below(rng, len + 1);
            let copies = 1 + below(rng, 4);
            for _ in 0..copies {
                data.splice(at..at, piece.iter().copied());
            }
        }
        6 => {
            let at = below(rng, len + 1);
            let n = 1 + below(rng, 16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            data.splice(at..at, bytes);
        }
        7 if len > 0 => {
            let (s, e) = chunk(rng, len);
            for b in &mut data[s..e] {
                *b = rng.u8(..);
            }
        }
        8 if !other.is_empty() => {
            let cut = below(rng, len + 1);
            let from = below(rng, other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        _ if len > 0 => {
            // Copy a chunk over another place in the same file (moves length fields about).
            let (s, e) = chunk(rng, len);
            let piece = data[s..e].to_vec();
            let at = below(rng, len - piece.len() + 1);
            data[at..at + piece.len()].copy_from_slice(&piece);
        }
        _ => data.push(rng.u8(..)),
    }
    data.truncate(MAX_INPUT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_seeded_and_bounded() {
        let seed: Vec<u8> = (0..=255).collect();
        let run = |s| {
            let mut rng = Rng::with_seed(s);
            let mut d = seed.clone();
            for _ in 0..200 {
                mutate_bytes(&mut rng, &mut d, &seed);
            }
            d
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let mut rng = Rng::with_seed(1);
        let mut d = vec![0u8; MAX_INPUT];
        for _ in 0..50 {
            mutate_bytes(&mut rng, &mut d, &seed);
            assert!(d.len() <= MAX_INPUT);
        }
    }
}
