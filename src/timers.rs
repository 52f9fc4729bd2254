//! The timer heap: a binary min-heap of `TimerHandle`s ordered by
//! `(when, sequence)`, so timers with equal deadlines fire in the order they
//! were scheduled (asyncio's heapq gives the same order in practice).
//!
//! Cancelled timers are reclaimed the way asyncio does it: popped lazily
//! when they reach the top, and the whole heap is rebuilt when more than
//! half of a heap of over 100 entries is cancelled. So a million cancelled
//! one-hour timers do not stay resident.
//!
//! NaN deadlines sort first (asyncio compares NaN as "not later than the
//! end time", so such a timer fires on the next iteration); +inf never fires.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::handles::HandleRef;

/// Below this size the heap is never rebuilt (asyncio's constant).
const MIN_SCHEDULED_FOR_COMPACTION: usize = 100;

struct Entry {
    key: f64,
    seq: u64,
    handle: HandleRef,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest first.
        other
            .key
            .total_cmp(&self.key)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Heap of scheduled timers plus the count of cancelled ones still inside.
pub struct TimerHeap {
    heap: BinaryHeap<Entry>,
    seq: u64,
    cancelled: Arc<AtomicUsize>,
}

impl Default for TimerHeap {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerHeap {
    pub fn new() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            seq: 0,
            cancelled: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Shared counter handed to each `TimerHandle` so `cancel()` can report.
    pub fn cancel_counter(&self) -> Arc<AtomicUsize> {
        self.cancelled.clone()
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub fn push(&mut self, when: f64, handle: HandleRef) {
        let key = if when.is_nan() {
            f64::NEG_INFINITY
        } else {
            when
        };
        self.seq = self.seq.wrapping_add(1);
        self.heap.push(Entry {
            key,
            seq: self.seq,
            handle,
        });
    }

    fn cancelled_count(&self) -> usize {
        // Relaxed: heuristic counter, see handles.rs.
        self.cancelled.load(Ordering::Relaxed)
    }

    fn note_reclaimed(&self) {
        let _ = self
            .cancelled
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(1))
            });
    }

    /// Drops cancelled timers: rebuild when most are cancelled, else pop the
    /// cancelled ones sitting at the top. Returns the reclaimed handles so the
    /// caller can drop them (decref) outside any lock.
    pub fn reclaim(&mut self) -> Vec<HandleRef> {
        let mut out = Vec::new();
        let n = self.heap.len();
        if n > MIN_SCHEDULED_FOR_COMPACTION && self.cancelled_count() * 2 > n {
            let old = std::mem::take(&mut self.heap).into_vec();
            let mut keep = Vec::with_capacity(n - self.cancelled_count().min(n));
            for e in old {
                let core = e.handle.core();
                if core.is_cancelled() {
                    core.unschedule();
                    out.push(e.handle);
                } else {
                    keep.push(e);
                }
            }
            self.heap = BinaryHeap::from(keep);
            self.cancelled.store(0, Ordering::Relaxed);
        } else {
            while let Some(top) = self.heap.peek() {
                let core = top.handle.core();
                if !core.is_cancelled() {
                    break;
                }
                core.unschedule();
                self.note_reclaimed();
                if let Some(e) = self.heap.pop() {
                    out.push(e.handle);
                }
            }
        }
        out
    }

    /// Deadline of the earliest timer (NaN reported as -inf: due now).
    pub fn next_deadline(&self) -> Option<f64> {
        self.heap.peek().map(|e| e.key)
    }

    /// Moves every timer due before `end_time` into `out` (as plain handles);
    /// cancelled ones go to `dropped`, for the caller to release outside the
    /// heap (freeing a handle can run `__del__` code, which may schedule).
    pub fn pop_due(
        &mut self,
        end_time: f64,
        out: &mut Vec<HandleRef>,
        dropped: &mut Vec<HandleRef>,
    ) {
        while let Some(top) = self.heap.peek() {
            if top.key >= end_time {
                break;
            }
            let Some(e) = self.heap.pop() else { break };
            let core = e.handle.core();
            core.unschedule();
            if core.is_cancelled() {
                self.note_reclaimed();
                dropped.push(e.handle);
                continue;
            }
            out.push(e.handle);
        }
    }

    /// Reports every handle to the garbage collector.
    pub fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        for e in self.heap.iter() {
            visit.call(e.handle.as_py())?;
        }
        Ok(())
    }

    /// Empties the heap (loop close).
    pub fn clear(&mut self) -> Vec<HandleRef> {
        self.cancelled.store(0, Ordering::Relaxed);
        std::mem::take(&mut self.heap)
            .into_vec()
            .into_iter()
            .map(|e| e.handle)
            .collect()
    }
}
