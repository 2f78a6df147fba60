//! The values the probes (`incremental_probe`, `restore_probe`) and
//! `tests/incremental.rs` write: included with `#[path]`, not a crate of its own.

/// 1 KiB of pseudo-random, incompressible bytes for key `k` in round `round`
/// (xorshift), so that RocksDB stores every byte.
pub fn value(k: u64, round: u64) -> Vec<u8> {
    let mut x =
        k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (round + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..128)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}
