//! Key groups: the unit of partitioning, snapshot layout and rescaling.
//!
//! The functions here reproduce Flink's `KeyGroupRangeAssignment` and
//! `MathUtils.murmurHash` bit for bit, so a key lands in the same key group
//! whether Flink or a C engine computes it (tests/keygroup.rs checks this
//! against vectors produced by Flink's own code).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Flink's upper bound for the maximum parallelism (number of key groups).
pub const UPPER_BOUND_MAX_PARALLELISM: u32 = 1 << 15;
/// Flink's default lower bound when it derives a max parallelism.
pub const DEFAULT_LOWER_BOUND_MAX_PARALLELISM: u32 = 1 << 7;

/// Flink's `MathUtils.murmurHash(int)`: a murmur3 finalisation of a 32-bit hash,
/// folded to a non-negative int.
pub fn murmur_hash(code: i32) -> i32 {
    let mut h = code.wrapping_mul(0xcc9e_2d51_u32 as i32);
    h = h.rotate_left(15);
    h = h.wrapping_mul(0x1b87_3593);
    h = h.rotate_left(13);
    h = h.wrapping_mul(5).wrapping_add(0xe654_6b64_u32 as i32);
    h ^= 4;
    h = bit_mix(h);
    if h >= 0 {
        h
    } else if h != i32::MIN {
        -h
    } else {
        0
    }
}

fn bit_mix(mut h: i32) -> i32 {
    h ^= ((h as u32) >> 16) as i32;
    h = h.wrapping_mul(0x85eb_ca6b_u32 as i32);
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(0xc2b2_ae35_u32 as i32);
    h ^= ((h as u32) >> 16) as i32;
    h
}

/// The key group of a key whose Java `hashCode()` is `key_hash`
/// (Flink's `computeKeyGroupForKeyHash`).
pub fn key_group_for_hash(key_hash: i32, max_parallelism: u32) -> Result<u32> {
    check_max_parallelism(max_parallelism)?;
    Ok(murmur_hash(key_hash) as u32 % max_parallelism)
}

/// The key-group range that operator `operator_index` of `parallelism` owns
/// (Flink's `computeKeyGroupRangeForOperatorIndex`).
pub fn range_for_operator(
    max_parallelism: u32,
    parallelism: u32,
    operator_index: u32,
) -> Result<KeyGroupRange> {
    check_max_parallelism(max_parallelism)?;
    if parallelism == 0 || parallelism > max_parallelism {
        return Err(Error::invalid(format!(
            "parallelism {parallelism} must be between 1 and the max parallelism {max_parallelism}"
        )));
    }
    if operator_index >= parallelism {
        return Err(Error::invalid(format!(
            "operator index {operator_index} must be below the parallelism {parallelism}"
        )));
    }
    let (max, p, i) = (
        max_parallelism as u64,
        parallelism as u64,
        operator_index as u64,
    );
    let start = (i * max).div_ceil(p);
    let end = ((i + 1) * max - 1) / p;
    KeyGroupRange::new(start as u32, end as u32)
}

/// The operator index that owns `key_group` (Flink's `computeOperatorIndexForKeyGroup`).
pub fn operator_for_key_group(
    max_parallelism: u32,
    parallelism: u32,
    key_group: u32,
) -> Result<u32> {
    check_max_parallelism(max_parallelism)?;
    if parallelism == 0 || parallelism > max_parallelism || key_group >= max_parallelism {
        return Err(Error::invalid(format!(
            "key group {key_group} / parallelism {parallelism} do not fit max parallelism {max_parallelism}"
        )));
    }
    Ok((key_group as u64 * parallelism as u64 / max_parallelism as u64) as u32)
}

/// Flink's `computeDefaultMaxParallelism`: 1.5 × parallelism rounded up to a power
/// of two, clamped to [128, 32768].
pub fn default_max_parallelism(parallelism: u32) -> u32 {
    let p = parallelism as u64;
    let wanted = (p + p / 2).max(1).next_power_of_two();
    wanted.clamp(
        DEFAULT_LOWER_BOUND_MAX_PARALLELISM as u64,
        UPPER_BOUND_MAX_PARALLELISM as u64,
    ) as u32
}

/// Rejects a max parallelism Flink would reject.
pub fn check_max_parallelism(max_parallelism: u32) -> Result<()> {
    if max_parallelism == 0 || max_parallelism > UPPER_BOUND_MAX_PARALLELISM {
        return Err(Error::invalid(format!(
            "max parallelism {max_parallelism} must be between 1 and {UPPER_BOUND_MAX_PARALLELISM}"
        )));
    }
    Ok(())
}

/// An inclusive, non-empty range of key groups, as Flink's `KeyGroupRange`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyGroupRange {
    start: u32,
    end: u32,
}

impl KeyGroupRange {
    /// `start..=end`; fails when `end < start`.
    pub fn new(start: u32, end: u32) -> Result<Self> {
        if end < start {
            return Err(Error::invalid(format!(
                "key-group range {start}-{end} is empty (end before start)"
            )));
        }
        Ok(KeyGroupRange { start, end })
    }

    /// All key groups of a max parallelism: `0..=max-1`.
    pub fn all(max_parallelism: u32) -> Result<Self> {
        check_max_parallelism(max_parallelism)?;
        KeyGroupRange::new(0, max_parallelism - 1)
    }

    pub fn start(&self) -> u32 {
        self.start
    }

    pub fn end(&self) -> u32 {
        self.end
    }

    /// Number of key groups in the range.
    pub fn len(&self) -> u32 {
        self.end - self.start + 1
    }

    /// Never true: ranges are non-empty by construction.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, key_group: u32) -> bool {
        self.start <= key_group && key_group <= self.end
    }

    /// The key groups both ranges own, if any.
    pub fn intersect(&self, other: &KeyGroupRange) -> Option<KeyGroupRange> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start <= end).then_some(KeyGroupRange { start, end })
    }

    pub fn iter(&self) -> std::ops::RangeInclusive<u32> {
        self.start..=self.end
    }

    /// Parses `start-end` (as written in configuration and file names).
    pub fn parse(text: &str) -> Option<Self> {
        let (a, b) = text.trim().split_once('-')?;
        KeyGroupRange::new(a.trim().parse().ok()?, b.trim().parse().ok()?).ok()
    }
}

impl fmt::Display for KeyGroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_partition_all_key_groups() {
        for max in [1u32, 7, 128, 1000] {
            for p in 1..=max.min(17) {
                let mut next = 0;
                for i in 0..p {
                    let r = range_for_operator(max, p, i).unwrap();
                    assert_eq!(r.start(), next);
                    for kg in r.iter() {
                        assert_eq!(operator_for_key_group(max, p, kg).unwrap(), i);
                    }
                    next = r.end() + 1;
                }
                assert_eq!(next, max);
            }
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(key_group_for_hash(1, 0).is_err());
        assert!(key_group_for_hash(1, UPPER_BOUND_MAX_PARALLELISM + 1).is_err());
        assert!(range_for_operator(128, 0, 0).is_err());
        assert!(range_for_operator(128, 4, 4).is_err());
        assert!(range_for_operator(4, 5, 0).is_err());
        assert!(KeyGroupRange::new(5, 4).is_err());
    }
}
