//! Shared queues: process-wide named FIFO queues that filters on any worker can enqueue to
//! and dequeue from. A queue is named by (vm_id, name); ids are process-wide.
//! `on_queue_ready` delivery to the registering root context is not implemented yet.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

#[derive(Debug, Default)]
struct Inner {
    ids: HashMap<(String, String), u32>,
    queues: Vec<VecDeque<Bytes>>,
}

#[derive(Debug, Default)]
pub struct SharedQueues {
    inner: Mutex<Inner>,
}

impl SharedQueues {
    /// The id of queue `name` of `vm_id`, creating it on first registration.
    pub fn register(&self, vm_id: &str, name: &str) -> u32 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (vm_id.to_string(), name.to_string());
        if let Some(id) = inner.ids.get(&key) {
            return *id;
        }
        let id = inner.queues.len() as u32 + 1;
        inner.queues.push(VecDeque::new());
        inner.ids.insert(key, id);
        id
    }

    pub fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .ids
            .get(&(vm_id.to_string(), name.to_string()))
            .copied()
    }

    /// `false` when there is no such queue.
    pub fn enqueue(&self, id: u32, item: Bytes) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.queues.get_mut((id as usize).wrapping_sub(1)) {
            Some(queue) => {
                queue.push_back(item);
                true
            }
            None => false,
        }
    }

    /// `None` when there is no such queue; `Some(None)` when it is empty.
    pub fn dequeue(&self, id: u32) -> Option<Option<Bytes>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .queues
            .get_mut((id as usize).wrapping_sub(1))
            .map(VecDeque::pop_front)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_resolve_enqueue_dequeue() {
        let q = SharedQueues::default();
        assert_eq!(q.resolve("", "a"), None);
        let id = q.register("", "a");
        assert_eq!(q.register("", "a"), id);
        assert_ne!(q.register("other-vm", "a"), id);
        assert_eq!(q.resolve("", "a"), Some(id));
        assert!(q.enqueue(id, Bytes::from_static(b"1")));
        assert!(!q.enqueue(999, Bytes::new()));
        assert_eq!(q.dequeue(id), Some(Some(Bytes::from_static(b"1"))));
        assert_eq!(q.dequeue(id), Some(None));
        assert_eq!(q.dequeue(999), None);
    }
}
