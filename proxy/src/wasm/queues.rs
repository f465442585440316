//! Shared queues: process-wide named FIFO queues that filters on any worker can enqueue to
//! and dequeue from. A queue is named by (vm_id, name); ids are process-wide. Every VM that
//! registered a queue is told when an item arrives (its root context gets
//! `on_queue_ready`); the first to dequeue takes the item.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::Notify;

/// How a VM's root context learns that queues it registered have items.
#[derive(Debug, Default)]
pub struct RootSignals {
    pub notify: Notify,
    ready: Mutex<Vec<u32>>,
}

impl RootSignals {
    /// The queue ids that got items since the last call.
    pub fn take_ready(&self) -> Vec<u32> {
        std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn mark(&self, id: u32) {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        if !ready.contains(&id) {
            ready.push(id);
        }
        drop(ready);
        self.notify.notify_one();
    }
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Bytes>,
    owners: Vec<Weak<RootSignals>>,
}

#[derive(Debug, Default)]
struct Inner {
    ids: HashMap<(String, String), u32>,
    queues: Vec<Queue>,
}

#[derive(Debug, Default)]
pub struct SharedQueues {
    inner: Mutex<Inner>,
}

impl SharedQueues {
    /// The id of queue `name` of `vm_id`, creating it on first registration.
    pub fn register(&self, vm_id: &str, name: &str, owner: &Arc<RootSignals>) -> u32 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (vm_id.to_string(), name.to_string());
        let id = match inner.ids.get(&key) {
            Some(id) => *id,
            None => {
                let id = inner.queues.len() as u32 + 1;
                inner.queues.push(Queue::default());
                inner.ids.insert(key, id);
                id
            }
        };
        let queue = &mut inner.queues[id as usize - 1];
        queue.owners.retain(|o| o.strong_count() > 0);
        if !queue
            .owners
            .iter()
            .any(|o| std::ptr::eq(o.as_ptr(), Arc::as_ptr(owner)))
        {
            queue.owners.push(Arc::downgrade(owner));
        }
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
                queue.items.push_back(item);
                let owners: Vec<_> = queue.owners.iter().filter_map(Weak::upgrade).collect();
                drop(inner);
                for owner in owners {
                    owner.mark(id);
                }
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
            .map(|q| q.items.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_resolve_enqueue_dequeue() {
        let q = SharedQueues::default();
        let owner = Arc::new(RootSignals::default());
        assert_eq!(q.resolve("", "a"), None);
        let id = q.register("", "a", &owner);
        assert_eq!(q.register("", "a", &owner), id);
        assert_ne!(q.register("other-vm", "a", &owner), id);
        assert_eq!(q.resolve("", "a"), Some(id));
        assert!(q.enqueue(id, Bytes::from_static(b"1")));
        assert!(q.enqueue(id, Bytes::from_static(b"2")));
        assert_eq!(
            owner.take_ready(),
            vec![id],
            "the owner is told once per queue"
        );
        assert_eq!(owner.take_ready(), Vec::<u32>::new());
        assert!(!q.enqueue(999, Bytes::new()));
        assert_eq!(q.dequeue(id), Some(Some(Bytes::from_static(b"1"))));
        assert_eq!(q.dequeue(id), Some(Some(Bytes::from_static(b"2"))));
        assert_eq!(q.dequeue(id), Some(None));
        assert_eq!(q.dequeue(999), None);
    }
}
