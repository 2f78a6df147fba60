//! Operator (non-keyed) list state, with Flink's two redistribution modes on restore.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a list's elements are redistributed when parallelism changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Distribution {
    /// Flink's `getListState`: the elements of all old instances are concatenated and
    /// split into contiguous, nearly equal parts, one per new instance.
    EvenSplit = 0,
    /// Flink's `getUnionListState`: every new instance gets all elements.
    Union = 1,
}

/// One operator list state in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorListSnapshot {
    pub name: String,
    pub distribution: Distribution,
    pub elements: Vec<Vec<u8>>,
}

#[derive(Clone, Debug)]
struct OperatorList {
    distribution: Distribution,
    elements: Vec<Vec<u8>>,
}

/// The operator list states of one backend instance.
#[derive(Default, Debug)]
pub struct OperatorStateStore {
    lists: BTreeMap<String, OperatorList>,
}

impl OperatorStateStore {
    /// Registers a list (idempotent); another distribution for a known name is an error.
    pub fn register(&mut self, name: &str, distribution: Distribution) -> Result<()> {
        if name.is_empty() {
            return Err(Error::invalid("an operator state name must not be empty"));
        }
        match self.lists.get(name) {
            Some(l) if l.distribution != distribution => Err(Error::State(format!(
                "operator state '{name}' is registered with {:?} distribution, not {:?}",
                l.distribution, distribution
            ))),
            Some(_) => Ok(()),
            None => {
                self.lists.insert(
                    name.to_string(),
                    OperatorList {
                        distribution,
                        elements: Vec::new(),
                    },
                );
                Ok(())
            }
        }
    }

    fn list_mut(&mut self, name: &str) -> Result<&mut OperatorList> {
        self.lists
            .get_mut(name)
            .ok_or_else(|| Error::State(format!("no operator state named '{name}'")))
    }

    /// The elements of a list.
    pub fn get(&self, name: &str) -> Result<&[Vec<u8>]> {
        self.lists
            .get(name)
            .map(|l| l.elements.as_slice())
            .ok_or_else(|| Error::State(format!("no operator state named '{name}'")))
    }

    pub fn add(&mut self, name: &str, element: &[u8]) -> Result<()> {
        self.list_mut(name)?.elements.push(element.to_vec());
        Ok(())
    }

    /// Replaces the elements of a list.
    pub fn update<E: AsRef<[u8]>>(&mut self, name: &str, elements: &[E]) -> Result<()> {
        let list = self.list_mut(name)?;
        list.elements = elements.iter().map(|e| e.as_ref().to_vec()).collect();
        Ok(())
    }

    pub fn clear(&mut self, name: &str) -> Result<()> {
        self.list_mut(name)?.elements.clear();
        Ok(())
    }

    /// Names of the registered lists.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.lists.keys().map(String::as_str)
    }

    /// A copy for a snapshot (operator state is small by Flink's contract).
    pub fn snapshot(&self) -> Vec<OperatorListSnapshot> {
        self.lists
            .iter()
            .map(|(name, l)| OperatorListSnapshot {
                name: name.clone(),
                distribution: l.distribution,
                elements: l.elements.clone(),
            })
            .collect()
    }

    /// Restores this instance's share of the lists of all old instances.
    /// `old` holds each old instance's lists, in old-instance order.
    pub fn restore(
        old: &[&[OperatorListSnapshot]],
        subtask_index: u32,
        parallelism: u32,
    ) -> Result<Self> {
        if parallelism == 0 || subtask_index >= parallelism {
            return Err(Error::invalid(format!(
                "subtask index {subtask_index} must be below parallelism {parallelism}"
            )));
        }
        let mut merged: BTreeMap<String, OperatorList> = BTreeMap::new();
        for lists in old {
            for l in lists.iter() {
                let entry = merged
                    .entry(l.name.clone())
                    .or_insert_with(|| OperatorList {
                        distribution: l.distribution,
                        elements: Vec::new(),
                    });
                if entry.distribution != l.distribution {
                    return Err(Error::Restore(format!(
                        "operator state '{}' has different distribution modes in the snapshots",
                        l.name
                    )));
                }
                entry.elements.extend(l.elements.iter().cloned());
            }
        }
        for list in merged.values_mut() {
            if list.distribution == Distribution::EvenSplit {
                let range = even_split(list.elements.len(), subtask_index, parallelism);
                list.elements = list.elements.drain(range).collect();
            }
        }
        Ok(OperatorStateStore { lists: merged })
    }
}

/// The contiguous share of `total` elements that `index` of `parallelism` gets:
/// `total / p` each, and one more for the first `total % p` instances.
pub fn even_split(total: usize, index: u32, parallelism: u32) -> std::ops::Range<usize> {
    let (p, i) = (parallelism as usize, index as usize);
    let base = total / p;
    let extra = total % p;
    let start = i * base + i.min(extra);
    let len = base + usize::from(i < extra);
    start..start + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_split_covers_everything_once() {
        for total in 0..20 {
            for p in 1..7u32 {
                let mut next = 0;
                for i in 0..p {
                    let r = even_split(total, i, p);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, total);
            }
        }
    }

    #[test]
    fn union_and_split_restore() {
        let a = vec![
            OperatorListSnapshot {
                name: "offsets".into(),
                distribution: Distribution::EvenSplit,
                elements: vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
            },
            OperatorListSnapshot {
                name: "all".into(),
                distribution: Distribution::Union,
                elements: vec![b"x".to_vec()],
            },
        ];
        let b = vec![OperatorListSnapshot {
            name: "offsets".into(),
            distribution: Distribution::EvenSplit,
            elements: vec![b"d".to_vec()],
        }];
        let s0 = OperatorStateStore::restore(&[&a, &b], 0, 3).unwrap();
        let s2 = OperatorStateStore::restore(&[&a, &b], 2, 3).unwrap();
        assert_eq!(s0.get("offsets").unwrap(), &[b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(s2.get("offsets").unwrap(), &[b"d".to_vec()]);
        assert_eq!(s2.get("all").unwrap(), &[b"x".to_vec()]);
    }
}
