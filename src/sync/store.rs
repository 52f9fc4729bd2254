//! `Store`: where a `ferrio.Queue` keeps its items, in one of the three
//! orders of the stdlib's `queue` module.
//!
//! FIFO and LIFO keep the items in Rust; a priority queue keeps a Python
//! list ordered by `heapq` (its comparisons are the items' own `__lt__`, so
//! an exception from one surfaces exactly as from `queue.PriorityQueue`).
//! Only queue.rs touches a store, always under the queue's mutex.

use std::collections::VecDeque;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyList;

static HEAPPUSH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static HEAPPOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Fifo,
    Lifo,
    Priority,
}

pub(crate) enum Store {
    Fifo(VecDeque<Py<PyAny>>),
    Lifo(Vec<Py<PyAny>>),
    Heap(Py<PyList>),
}

impl Store {
    pub(crate) fn new(py: Python<'_>, order: Order) -> Self {
        match order {
            Order::Fifo => Store::Fifo(VecDeque::new()),
            Order::Lifo => Store::Lifo(Vec::new()),
            Order::Priority => Store::Heap(PyList::empty(py).unbind()),
        }
    }

    pub(crate) fn len(&self, py: Python<'_>) -> usize {
        match self {
            Store::Fifo(d) => d.len(),
            Store::Lifo(v) => v.len(),
            Store::Heap(l) => l.bind(py).len(),
        }
    }

    pub(crate) fn push(&mut self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        match self {
            Store::Fifo(d) => d.push_back(item),
            Store::Lifo(v) => v.push(item),
            Store::Heap(l) => {
                HEAPPUSH
                    .import(py, "heapq", "heappush")?
                    .call1((l.bind(py), item))?;
            }
        }
        Ok(())
    }

    /// The next item in the store's order, if any.
    pub(crate) fn pop(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(match self {
            Store::Fifo(d) => d.pop_front(),
            Store::Lifo(v) => v.pop(),
            Store::Heap(l) => {
                if l.bind(py).is_empty() {
                    return Ok(None);
                }
                let item = HEAPPOP
                    .import(py, "heapq", "heappop")?
                    .call1((l.bind(py),))?;
                Some(item.unbind())
            }
        })
    }

    /// Puts back an item that was handed out but not taken (a cancelled
    /// coroutine's): it becomes the next item again.
    pub(crate) fn unpop(&mut self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        match self {
            Store::Fifo(d) => {
                d.push_front(item);
                Ok(())
            }
            _ => self.push(py, item),
        }
    }

    /// Empties the store (`shutdown(immediate=True)`); the caller drops
    /// the items after the queue's mutex.
    pub(crate) fn take_all(&mut self, py: Python<'_>) -> Vec<Py<PyAny>> {
        match self {
            Store::Fifo(d) => d.drain(..).collect(),
            Store::Lifo(v) => std::mem::take(v),
            Store::Heap(l) => {
                let items = l.bind(py).iter().map(Bound::unbind).collect();
                *l = PyList::empty(py).unbind();
                items
            }
        }
    }
}
