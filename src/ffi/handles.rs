//! Handle tables: foreign code never holds a pointer into Rust memory for an object
//! it must close. It holds a 64-bit id that names a slot, the slot's generation and
//! the table's type tag; a closed, freed, forged or wrong-type id simply fails to
//! resolve, so misuse becomes an error instead of undefined behaviour.
//!
//! Id layout: `tag (8 bits) ‖ generation (24 bits) ‖ slot index + 1 (32 bits)`.
//! Id 0 is never issued. A slot's generation changes each time it is freed, so an
//! old id is detected until the same slot has been reused 2^24 times.

use std::sync::{Arc, RwLock};

const GENERATION_BITS: u32 = 24;
const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

struct Slot<T> {
    generation: u32,
    value: Option<Arc<T>>,
}

struct Slots<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

/// A table of live objects of one type.
pub(crate) struct HandleTable<T> {
    tag: u8,
    inner: RwLock<Slots<T>>,
}

impl<T> HandleTable<T> {
    /// A table whose ids carry `tag` (distinct per table, non-zero).
    pub(crate) const fn new(tag: u8) -> Self {
        HandleTable {
            tag,
            inner: RwLock::new(Slots {
                slots: Vec::new(),
                free: Vec::new(),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Slots<T>> {
        // Nothing panics while holding the lock; a poisoned lock still holds valid slots.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Slots<T>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn encode(&self, index: u32, generation: u32) -> u64 {
        (u64::from(self.tag) << 56) | (u64::from(generation) << 32) | (u64::from(index) + 1)
    }

    /// (index, generation) of an id of this table.
    fn decode(&self, id: u64) -> Option<(usize, u32)> {
        if (id >> 56) as u8 != self.tag {
            return None;
        }
        let low = id as u32;
        let index = low.checked_sub(1)?;
        Some((index as usize, ((id >> 32) as u32) & GENERATION_MASK))
    }

    /// Stores `value`; returns its id.
    pub(crate) fn insert(&self, value: T) -> u64 {
        let value = Arc::new(value);
        let mut t = self.write();
        if let Some(index) = t.free.pop() {
            let slot = &mut t.slots[index as usize];
            slot.value = Some(value);
            let generation = slot.generation;
            drop(t);
            return self.encode(index, generation);
        }
        let index = u32::try_from(t.slots.len()).expect("fewer than 2^32 live handles");
        t.slots.push(Slot {
            generation: 1,
            value: Some(value),
        });
        self.encode(index, 1)
    }

    /// The object behind `id`, if it is live.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<T>> {
        let (index, generation) = self.decode(id)?;
        let t = self.read();
        let slot = t.slots.get(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.value.clone()
    }

    /// Whether `id` is live.
    pub(crate) fn contains(&self, id: u64) -> bool {
        let Some((index, generation)) = self.decode(id) else {
            return false;
        };
        let t = self.read();
        t.slots
            .get(index)
            .is_some_and(|s| s.generation == generation && s.value.is_some())
    }

    /// Removes the object behind `id`; later uses of `id` fail. The object itself is
    /// dropped when the last in-flight call using it returns.
    pub(crate) fn remove(&self, id: u64) -> Option<Arc<T>> {
        let (index, generation) = self.decode(id)?;
        let mut t = self.write();
        let slot = t.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = match (slot.generation + 1) & GENERATION_MASK {
            0 => 1,
            g => g,
        };
        t.free.push(index as u32);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::HandleTable;

    #[test]
    fn stale_forged_and_foreign_ids_fail() {
        let a: HandleTable<u32> = HandleTable::new(1);
        let b: HandleTable<u32> = HandleTable::new(2);
        let x = a.insert(7);
        assert_eq!(*a.get(x).unwrap(), 7);
        assert!(b.get(x).is_none(), "an id of another table");
        assert!(a.get(0).is_none());
        assert!(a.get(x + 1).is_none(), "a forged index");
        assert!(a.remove(x).is_some());
        assert!(a.remove(x).is_none(), "double remove");
        let y = a.insert(8);
        assert_ne!(x, y, "the reused slot has a new generation");
        assert!(a.get(x).is_none());
        assert_eq!(*a.get(y).unwrap(), 8);
    }
}
