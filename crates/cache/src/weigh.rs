//! Approximate heap bytes of what a cache entry is made of, for moka's weigher, so
//! `cache.max_bytes` bounds memory rather than an entry count.
//!
//! The estimate counts what an entry really allocates: every `String`/`Vec` buffer at
//! its capacity, rounded the way glibc's malloc rounds chunks (16-byte granules, 8 bytes
//! of header, 32 bytes minimum), the `Arc` boxes around values, the key's own strings,
//! and moka's per-entry bookkeeping (measured: see the memory test). This module
//! holds the rules and the generic parts; each resource (`resources/`) weighs its own
//! models with them, and `value` sums an entry's weight.

use std::mem::size_of;
use std::sync::Arc;

/// moka's own cost per entry: the key and value `Arc`s it wraps, entry info, the
/// access-order and write-order deque nodes, the timer-wheel node for per-entry
/// expiry and the hash-table slot. Calibrated by `tests/memory_bound.rs`.
pub(crate) const MOKA_ENTRY_OVERHEAD: usize = 320;

/// Bytes malloc really hands out for a request of `n` bytes.
pub(crate) fn alloc(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32)
    }
}

/// Heap bytes owned by a value (not counting the value's own inline size).
pub trait HeapSize {
    fn heap_size(&self) -> usize;
}

/// `impl HeapSize` for a struct as the sum of the named fields' heap bytes (the
/// fields that own heap memory; the others own none).
macro_rules! heap_size_of_fields {
    ($ty:ty: $($field:ident),+ $(,)?) => {
        impl $crate::weigh::HeapSize for $ty {
            fn heap_size(&self) -> usize {
                0 $(+ $crate::weigh::HeapSize::heap_size(&self.$field))+
            }
        }
    };
}
pub(crate) use heap_size_of_fields;

impl HeapSize for String {
    fn heap_size(&self) -> usize {
        alloc(self.capacity())
    }
}

impl<T: HeapSize> HeapSize for Option<T> {
    fn heap_size(&self) -> usize {
        self.as_ref().map_or(0, HeapSize::heap_size)
    }
}

impl<T: HeapSize> HeapSize for Vec<T> {
    fn heap_size(&self) -> usize {
        alloc(self.capacity() * size_of::<T>())
            + self.iter().map(HeapSize::heap_size).sum::<usize>()
    }
}

/// An `Arc<T>`: the counted box plus whatever `T` owns.
impl<T: HeapSize> HeapSize for Arc<T> {
    fn heap_size(&self) -> usize {
        alloc(2 * size_of::<usize>() + size_of::<T>()) + T::heap_size(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn malloc_rounding() {
        assert_eq!(alloc(0), 0);
        assert_eq!(alloc(1), 32);
        assert_eq!(alloc(24), 32);
        assert_eq!(alloc(25), 48);
        assert_eq!(alloc(100), 112);
    }

    #[test]
    fn strings_count_capacity_not_length() {
        let mut s = String::with_capacity(1000);
        s.push('x');
        assert!(s.heap_size() >= 1000);
        let v: Vec<String> = vec!["ab".into(), "cd".into()];
        assert_eq!(v.heap_size(), alloc(v.capacity() * 24) + 2 * alloc(2));
    }
}
