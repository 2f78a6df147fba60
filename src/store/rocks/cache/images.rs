//! Whole maps, as last scanned: a scan of a map unchanged since is one hash probe
//! and a walk over contiguous bytes instead of a RocksDB seek (a walk down the
//! memtable's skip list and every level's index) and a step per entry.
//!
//! An image is dropped by any write to its map (put, remove, put-all, clear) and all
//! of them by a restore; they are never written anywhere, and snapshots do not read
//! them. They take at most an eighth of the cache's size, counted in its bytes.

use super::layer::{heap_bytes, table_bytes};
use crate::codec::{put_list_element, ListElements};
use hashbrown::HashTable;
use std::sync::Arc;

/// Maps whose entries take more than this are not imaged: their scan is dominated
/// by the entries, not by the seek.
const MAX_IMAGE: usize = 16 << 10;

/// A map's entries as `user key, value, user key, value, …` (list-encoded fields),
/// behind the map's cache key (`state ‖ key group ‖ key ‖ namespace`).
struct Image {
    hash: u64,
    prefix_len: usize,
    bytes: Arc<[u8]>,
}

/// Bytes of an image's slot in the table.
const SLOT: usize = std::mem::size_of::<Image>();

#[derive(Default)]
pub(super) struct MapImages {
    table: HashTable<Image>,
    /// The images' allocations.
    heap: usize,
    limit: usize,
}

/// The entries of one image, shared with the table: a scan keeps them while the
/// caller visits them, with the cache free for other calls.
pub(super) struct Entries {
    bytes: Arc<[u8]>,
    start: usize,
}

impl Entries {
    /// (user key, value) pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut fields = ListElements::new(&self.bytes[self.start..]);
        std::iter::from_fn(move || Some((fields.next()?, fields.next()?)))
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.bytes.len()
    }
}

/// Collects a map's entries during a scan, while they stay under `MAX_IMAGE`.
pub(super) struct ImageBuilder {
    bytes: Vec<u8>,
    prefix_len: usize,
    whole: bool,
}

impl ImageBuilder {
    pub fn new(prefix: &[u8]) -> Self {
        ImageBuilder {
            bytes: prefix.to_vec(),
            prefix_len: prefix.len(),
            whole: true,
        }
    }

    /// Whether it holds the whole map so far.
    pub fn whole(&self) -> bool {
        self.whole
    }

    pub fn add(&mut self, user_key: &[u8], value: &[u8]) {
        if !self.whole {
            return;
        }
        if self.bytes.len() + user_key.len() + value.len() + 20 > MAX_IMAGE {
            self.whole = false;
            self.bytes.truncate(self.prefix_len);
            self.bytes.shrink_to_fit();
            return;
        }
        put_list_element(&mut self.bytes, user_key);
        put_list_element(&mut self.bytes, value);
    }
}

impl MapImages {
    pub fn new(limit: usize) -> Self {
        MapImages {
            limit,
            ..Default::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The table and the images.
    pub fn bytes(&self) -> usize {
        table_bytes(self.table.capacity(), SLOT) + self.heap
    }

    fn find(&self, h: u64, prefix: &[u8]) -> Option<&Image> {
        self.table
            .find(h, |i| i.hash == h && &i.bytes[..i.prefix_len] == prefix)
    }

    /// The entries of the map at `prefix` (hash `h`), if imaged.
    pub fn get(&self, h: u64, prefix: &[u8]) -> Option<Entries> {
        self.find(h, prefix).map(|i| Entries {
            bytes: Arc::clone(&i.bytes),
            start: i.prefix_len,
        })
    }

    /// Keeps what `builder` collected, unless the map was too large.
    pub fn insert(&mut self, h: u64, builder: ImageBuilder) {
        let cost = image_cost(builder.bytes.len());
        if !builder.whole
            || cost > self.limit / 4
            || self.find(h, &builder.bytes[..builder.prefix_len]).is_some()
        {
            return;
        }
        let image = Image {
            hash: h,
            prefix_len: builder.prefix_len,
            bytes: builder.bytes.into(),
        };
        self.table.insert_unique(h, image, |i| i.hash);
        self.heap += cost;
        if self.bytes() > self.limit {
            self.thin();
        }
    }

    /// Drops the image of the map at `prefix` (hash `h`): the map changed.
    pub fn invalidate(&mut self, h: u64, prefix: &[u8]) {
        if let Ok(o) = self
            .table
            .find_entry(h, |i| i.hash == h && &i.bytes[..i.prefix_len] == prefix)
        {
            let (image, _) = o.remove();
            self.heap -= image_cost(image.bytes.len());
        }
    }

    pub fn clear(&mut self) {
        *self = MapImages::new(self.limit);
    }

    /// Drops every other image (those a scan holds live on until it is done).
    fn thin(&mut self) {
        let mut keep = false;
        let mut freed = 0;
        self.table.retain(|i| {
            keep = !keep;
            if !keep {
                freed += image_cost(i.bytes.len());
            }
            keep
        });
        self.heap -= freed;
        self.table.shrink_to_fit(|i| i.hash);
    }
}

/// An image's allocation: its bytes and the `Arc`'s two counters.
fn image_cost(len: usize) -> usize {
    heap_bytes(len + 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(prefix: &[u8], entries: &[(&[u8], &[u8])]) -> ImageBuilder {
        let mut b = ImageBuilder::new(prefix);
        for (k, v) in entries {
            b.add(k, v);
        }
        b
    }

    #[test]
    fn an_image_gives_back_its_entries_until_invalidated() {
        let mut images = MapImages::new(1 << 20);
        images.insert(7, image(b"map-a", &[(b"k1", b"v1"), (b"", b"empty key")]));
        images.insert(7, image(b"map-b", &[]));
        let a = images.get(7, b"map-a").expect("imaged");
        let got: Vec<_> = a.iter().collect();
        assert_eq!(
            got,
            vec![(&b"k1"[..], &b"v1"[..]), (&b""[..], &b"empty key"[..])]
        );
        assert!(images.get(7, b"map-b").expect("imaged").is_empty());
        assert!(images.get(7, b"map-c").is_none());
        images.invalidate(7, b"map-a");
        assert!(images.get(7, b"map-a").is_none());
        // A scan that got the entries keeps them.
        assert_eq!(a.iter().count(), 2);
        assert!(images.get(7, b"map-b").is_some());
    }

    #[test]
    fn images_stay_within_their_limit_and_large_maps_are_not_imaged() {
        let limit = 64 << 10;
        let mut images = MapImages::new(limit);
        for i in 0u32..10_000 {
            let prefix = i.to_be_bytes();
            images.insert(
                u64::from(i) * 0x9e37_79b9,
                image(&prefix, &[(b"k", &[0u8; 100])]),
            );
            assert!(images.bytes() <= limit, "{} > {limit}", images.bytes());
        }
        assert!(images.bytes() > limit / 4, "thinning keeps half");
        let big = vec![1u8; 4000];
        let mut b = ImageBuilder::new(b"big");
        for k in 0u8..5 {
            b.add(&[k], &big);
        }
        images.insert(1, b);
        assert!(images.get(1, b"big").is_none(), "over MAX_IMAGE");
        images.clear();
        assert_eq!(images.bytes(), 0);
    }
}
