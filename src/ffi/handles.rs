//! Handle tables: foreign code never holds a pointer into Rust memory for an object
//! it must close. It holds a 64-bit id that names a slot, the slot's generation and
//! the table's type tag; a closed, freed, forged or wrong-type id simply fails to
//! resolve, so misuse becomes an error instead of undefined behaviour.
//!
//! Id layout: `tag (8 bits) ‖ generation (24 bits) ‖ slot index + 1 (32 bits)`.
//! Id 0 is never issued. A slot's generation changes each time it is freed, so an
//! old id is detected until the same slot has been reused 2^24 times.
//!
//! Two kinds of table: [`HandleTable`] hands out shared references (`Arc`) that the
//! caller locks as it needs; [`LockedTable`] is for objects used under a lock on every
//! call (the JNI backends): its slots are the locks, so resolving and locking an id
//! costs one atomic compare-and-swap instead of a read lock, a reference count and a
//! mutex (six atomic operations).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The type tag in a handle's id: one per table, so an id of one kind of object
/// never resolves in another kind's table.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandleKind {
    CBackend = 1,
    CPendingSnapshot = 2,
    CSnapshot = 3,
    CKeysIter = 4,
    CEntriesIter = 5,
    CMapIter = 6,
    CSharedMemory = 7,
    JniBackend = 0x4a,
    JniKeysIter = 0x4b,
    JniPendingSnapshot = 0x4c,
    JniEntriesIter = 0x4d,
    JniUpload = 0x4e,
    JniSharedMemory = 0x4f,
    #[cfg(test)]
    Test1 = 0x71,
    #[cfg(test)]
    Test2 = 0x72,
}

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
    /// A table whose ids carry the tag of `kind` (one table per kind).
    pub(crate) const fn new(kind: HandleKind) -> Self {
        HandleTable {
            tag: kind as u8,
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

impl<T> HandleTable<Mutex<T>> {
    /// Runs `f` on the object behind `id`, under its lock: the same lookup as
    /// [`LockedTable::with`], for objects that are not used on every call.
    pub(crate) fn with<R>(&self, id: u64, f: impl FnOnce(&mut T) -> R) -> Result<R, Unusable> {
        let cell = self.get(id).ok_or(Unusable::Closed)?;
        // A panic under the lock may have left the object half-updated.
        let mut guard = cell.lock().map_err(|_| Unusable::Poisoned)?;
        Ok(f(&mut guard))
    }
}

/// Why an id cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// Removed, never issued, or an id of another table.
    Closed,
    /// A call panicked while holding the object: it may be half-updated.
    Poisoned,
}

const LOCKED: u32 = 1;
const POISONED: u32 = 2;

/// One slot: its lock, and the generation and object it guards.
struct LockedSlot<T> {
    state: AtomicU32,
    generation: UnsafeCell<u32>,
    value: UnsafeCell<Option<T>>,
}

/// Slots come in chunks of `FIRST_CHUNK << c` that never move or go away (a slot
/// stays readable after its object is removed): chunk `c` holds indices
/// `FIRST_CHUNK * (2^c - 1) ..`, so 27 chunks cover every 32-bit index.
const FIRST_CHUNK: usize = 64;
const CHUNKS: usize = 27;

struct Allocation {
    /// Slots handed out so far (indices `0..next`).
    next: u32,
    free: Vec<u32>,
}

/// A table of objects that each call uses under the object's lock; see the module.
pub(crate) struct LockedTable<T> {
    tag: u8,
    chunks: [AtomicPtr<LockedSlot<T>>; CHUNKS],
    allocation: Mutex<Allocation>,
}

// SAFETY: an object is only reached under its slot's lock, by one thread at a time.
unsafe impl<T: Send> Sync for LockedTable<T> {}
unsafe impl<T: Send> Send for LockedTable<T> {}

/// The chunk and the offset in it of a slot index.
fn chunk_of(index: u32) -> (usize, usize) {
    let q = index as usize / FIRST_CHUNK + 1;
    let c = (usize::BITS - 1 - q.leading_zeros()) as usize;
    (c, index as usize - FIRST_CHUNK * ((1 << c) - 1))
}

/// Holds a slot's lock; unlocking on a panic marks the object poisoned.
struct SlotGuard<'a> {
    state: &'a AtomicU32,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let poison = if std::thread::panicking() {
            POISONED
        } else {
            0
        };
        // Only the holder changes the state while it is locked: a plain store unlocks.
        let held = self.state.load(Ordering::Relaxed);
        self.state
            .store((held & !LOCKED) | poison, Ordering::Release);
    }
}

impl<T> LockedTable<T> {
    /// A table whose ids carry the tag of `kind` (one table per kind).
    pub(crate) const fn new(kind: HandleKind) -> Self {
        LockedTable {
            tag: kind as u8,
            chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS],
            allocation: Mutex::new(Allocation {
                next: 0,
                free: Vec::new(),
            }),
        }
    }

    fn slot(&self, index: u32) -> Option<&LockedSlot<T>> {
        let (c, offset) = chunk_of(index);
        let chunk = self.chunks[c].load(Ordering::Acquire);
        if chunk.is_null() {
            return None;
        }
        // SAFETY: a published chunk holds `FIRST_CHUNK << c` initialised slots and is
        // never freed while the table lives.
        Some(unsafe { &*chunk.add(offset) })
    }

    /// The slot of an id of this table and the generation the id names.
    fn resolve(&self, id: u64) -> Option<(&LockedSlot<T>, u32)> {
        if (id >> 56) as u8 != self.tag {
            return None;
        }
        let index = (id as u32).checked_sub(1)?;
        let generation = ((id >> 32) as u32) & GENERATION_MASK;
        Some((self.slot(index)?, generation))
    }

    fn lock<'a>(slot: &'a LockedSlot<T>) -> SlotGuard<'a> {
        let mut spins = 0u32;
        loop {
            let s = slot.state.load(Ordering::Relaxed);
            if s & LOCKED == 0
                && slot
                    .state
                    .compare_exchange_weak(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return SlotGuard { state: &slot.state };
            }
            // Held by another thread's call (rare: queries, close): spin briefly, then
            // let the holder run.
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Stores `value`; returns its id.
    pub(crate) fn insert(&self, value: T) -> u64 {
        let index = {
            let mut a = self.allocation.lock().unwrap_or_else(|e| e.into_inner());
            match a.free.pop() {
                Some(index) => index,
                None => {
                    let index = a.next;
                    assert!(index < u32::MAX - 1, "fewer than 2^32 live handles");
                    let (c, offset) = chunk_of(index);
                    if offset == 0 {
                        let chunk: Box<[LockedSlot<T>]> = (0..FIRST_CHUNK << c)
                            .map(|_| LockedSlot {
                                state: AtomicU32::new(0),
                                generation: UnsafeCell::new(1),
                                value: UnsafeCell::new(None),
                            })
                            .collect();
                        let chunk = Box::into_raw(chunk) as *mut LockedSlot<T>;
                        self.chunks[c].store(chunk, Ordering::Release);
                    }
                    a.next += 1;
                    index
                }
            }
        };
        let slot = self.slot(index).expect("allocated slots have a chunk");
        let _guard = Self::lock(slot);
        // SAFETY: under the slot's lock.
        let generation = unsafe {
            *slot.value.get() = Some(value);
            *slot.generation.get()
        };
        (u64::from(self.tag) << 56) | (u64::from(generation) << 32) | (u64::from(index) + 1)
    }

    /// Runs `f` on the object behind `id`, under its lock.
    #[inline]
    pub(crate) fn with<R>(&self, id: u64, f: impl FnOnce(&mut T) -> R) -> Result<R, Unusable> {
        let (slot, generation) = self.resolve(id).ok_or(Unusable::Closed)?;
        let guard = Self::lock(slot);
        // SAFETY: under the slot's lock; the generation only changes under it.
        let (current, value) = unsafe { (*slot.generation.get(), &mut *slot.value.get()) };
        match value {
            Some(value) if current == generation => {
                if guard.state.load(Ordering::Relaxed) & POISONED != 0 {
                    return Err(Unusable::Poisoned);
                }
                Ok(f(value))
            }
            _ => Err(Unusable::Closed),
        }
    }

    /// As [`LockedTable::with`], but without waiting: None when another call holds
    /// the object (a gauge polled by a metric reporter thread, which must not wait
    /// for a long call of the task thread).
    pub(crate) fn try_with<R>(
        &self,
        id: u64,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<Option<R>, Unusable> {
        let (slot, generation) = self.resolve(id).ok_or(Unusable::Closed)?;
        let s = slot.state.load(Ordering::Relaxed);
        if s & LOCKED != 0
            || slot
                .state
                .compare_exchange(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return Ok(None);
        }
        let guard = SlotGuard { state: &slot.state };
        // SAFETY: under the slot's lock; the generation only changes under it.
        let (current, value) = unsafe { (*slot.generation.get(), &mut *slot.value.get()) };
        match value {
            Some(value) if current == generation => {
                if guard.state.load(Ordering::Relaxed) & POISONED != 0 {
                    return Err(Unusable::Poisoned);
                }
                Ok(Some(f(value)))
            }
            _ => Err(Unusable::Closed),
        }
    }

    /// Removes the object behind `id` once no call holds it; later uses of `id` fail.
    pub(crate) fn remove(&self, id: u64) -> Option<T> {
        let (slot, generation) = self.resolve(id)?;
        let value = {
            let _guard = Self::lock(slot);
            // SAFETY: under the slot's lock.
            let (current, value) = unsafe { (&mut *slot.generation.get(), &mut *slot.value.get()) };
            if *current != generation {
                return None;
            }
            let value = value.take()?;
            *current = match (*current + 1) & GENERATION_MASK {
                0 => 1,
                g => g,
            };
            // The next object in this slot starts unpoisoned (the guard keeps the flag
            // only for a panic in progress).
            slot.state.store(LOCKED, Ordering::Relaxed);
            value
        };
        let index = (id as u32) - 1;
        self.allocation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .free
            .push(index);
        Some(value)
    }
}

impl<T> Drop for LockedTable<T> {
    fn drop(&mut self) {
        for (c, chunk) in self.chunks.iter_mut().enumerate() {
            let chunk = *chunk.get_mut();
            if !chunk.is_null() {
                // SAFETY: allocated in `insert` as a boxed slice of this length.
                drop(unsafe {
                    Box::from_raw(std::ptr::slice_from_raw_parts_mut(chunk, FIRST_CHUNK << c))
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{chunk_of, HandleKind, HandleTable, LockedTable, Unusable, FIRST_CHUNK};

    #[test]
    fn stale_forged_and_foreign_ids_fail() {
        let a: HandleTable<u32> = HandleTable::new(HandleKind::Test1);
        let b: HandleTable<u32> = HandleTable::new(HandleKind::Test2);
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

    #[test]
    fn chunks_cover_every_index() {
        assert_eq!(chunk_of(0), (0, 0));
        assert_eq!(chunk_of(63), (0, 63));
        assert_eq!(chunk_of(64), (1, 0));
        assert_eq!(chunk_of(191), (1, 127));
        assert_eq!(chunk_of(192), (2, 0));
        let (c, offset) = chunk_of(u32::MAX);
        assert!(c < super::CHUNKS && offset < FIRST_CHUNK << c);
    }

    #[test]
    fn locked_table_stale_forged_and_foreign_ids_fail() {
        let a: LockedTable<u32> = LockedTable::new(HandleKind::Test1);
        let b: LockedTable<u32> = LockedTable::new(HandleKind::Test2);
        let x = a.insert(7);
        assert_eq!(a.with(x, |v| *v), Ok(7));
        assert_eq!(
            b.with(x, |v| *v),
            Err(Unusable::Closed),
            "an id of another table"
        );
        assert_eq!(a.with(0, |v| *v), Err(Unusable::Closed));
        assert_eq!(
            a.with(x + 1, |v| *v),
            Err(Unusable::Closed),
            "an unused slot"
        );
        assert_eq!(
            a.with(x + 1000, |v| *v),
            Err(Unusable::Closed),
            "no such chunk"
        );
        assert_eq!(a.remove(x), Some(7));
        assert_eq!(a.remove(x), None, "double remove");
        let y = a.insert(8);
        assert_ne!(x, y, "the reused slot has a new generation");
        assert_eq!(a.with(x, |v| *v), Err(Unusable::Closed));
        assert_eq!(a.with(y, |v| *v), Ok(8));
    }

    #[test]
    fn locked_table_grows_across_chunks() {
        let t: LockedTable<usize> = LockedTable::new(HandleKind::Test1);
        let ids: Vec<u64> = (0..1000).map(|i| t.insert(i)).collect();
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(t.with(id, |v| *v), Ok(i));
        }
        for &id in &ids[..500] {
            assert!(t.remove(id).is_some());
        }
        for (i, &id) in ids.iter().enumerate().skip(500) {
            assert_eq!(t.with(id, |v| *v), Ok(i));
        }
    }

    #[test]
    fn a_panic_poisons_until_removed() {
        let t: LockedTable<u32> = LockedTable::new(HandleKind::Test1);
        let x = t.insert(1);
        let r = std::panic::catch_unwind(|| {
            t.with(x, |v| {
                *v = 2;
                panic!("half-updated");
            })
        });
        assert!(r.is_err());
        assert_eq!(t.with(x, |v| *v), Err(Unusable::Poisoned));
        assert_eq!(
            t.remove(x),
            Some(2),
            "a poisoned object can still be closed"
        );
        let y = t.insert(3);
        assert_eq!(t.with(y, |v| *v), Ok(3), "the reused slot is not poisoned");
    }

    #[test]
    fn calls_on_one_object_are_serialized() {
        let t: std::sync::Arc<LockedTable<u64>> =
            std::sync::Arc::new(LockedTable::new(HandleKind::Test1));
        let id = t.insert(0);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        // A non-atomic read-modify-write: lost updates if two overlap.
                        t.with(id, |v| {
                            let x = *v;
                            std::hint::black_box(());
                            *v = x + 1;
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(t.with(id, |v| *v), Ok(40_000));
        let closer = {
            let t = t.clone();
            std::thread::spawn(move || t.remove(id))
        };
        assert_eq!(closer.join().unwrap(), Some(40_000));
        assert_eq!(t.with(id, |v| *v), Err(Unusable::Closed));
    }

    #[test]
    fn try_with_gives_up_while_another_call_holds_the_object() {
        let t: LockedTable<u32> = LockedTable::new(HandleKind::Test1);
        let id = t.insert(5);
        assert_eq!(t.try_with(id, |v| *v), Ok(Some(5)));
        let inner = t.with(id, |_| t.try_with(id, |v| *v));
        assert_eq!(inner, Ok(Ok(None)), "held by the outer call: no wait");
        assert_eq!(t.try_with(id, |v| *v), Ok(Some(5)), "unlocked again");
        t.remove(id);
        assert_eq!(t.try_with(id, |v| *v), Err(Unusable::Closed));
    }
}
