//! A map whose entries are kept in lists in the order they were last touched: every operation is O(1)
//! (a hash lookup and a few index writes), so that following a million connections costs a million times
//! following one. The flow table keeps one list per kind of connection and takes the least recently
//! active of the least informative kind when it must make room, or when one has been idle too long.

use std::collections::HashMap;
use std::hash::Hash;

/// No node.
const NIL: u32 = u32::MAX;

/// An entry's place in the table; valid until the entry is removed.
pub(super) type Id = u32;

struct Node<K, V> {
    key: K,
    value: V,
    prev: u32,
    next: u32,
    list: usize,
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    len: usize,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// `N` lists of entries, each from the least to the most recently touched.
pub(super) struct Table<K, V, const N: usize> {
    map: HashMap<K, Id, foldhash::fast::RandomState>,
    /// INVARIANT: `nodes[i]` is `Some` exactly when `i` is in `map` (and in one list), `None` when it is in
    /// `free`.
    nodes: Vec<Option<Node<K, V>>>,
    free: Vec<Id>,
    lists: [List; N],
}

impl<K: Eq + Hash + Clone, V, const N: usize> Table<K, V, N> {
    /// A table for at most `capacity` entries. The entries' slots are allocated at once (memory not used
    /// stays untouched, and the slots never grow by doubling); the map grows with what it holds, so that a
    /// small working set stays small in the caches.
    pub(super) fn new(capacity: usize) -> Self {
        Table {
            map: HashMap::default(),
            nodes: Vec::with_capacity(capacity),
            free: Vec::new(),
            lists: [EMPTY; N],
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Entries in list `list`.
    pub(super) fn len_of(&self, list: usize) -> usize {
        self.lists.get(list).map_or(0, |l| l.len)
    }

    pub(super) fn find(&self, key: &K) -> Option<Id> {
        self.map.get(key).copied()
    }

    fn node(&self, id: Id) -> Option<&Node<K, V>> {
        self.nodes.get(id as usize)?.as_ref()
    }

    fn node_mut(&mut self, id: Id) -> Option<&mut Node<K, V>> {
        self.nodes.get_mut(id as usize)?.as_mut()
    }

    pub(super) fn get(&self, id: Id) -> Option<&V> {
        self.node(id).map(|n| &n.value)
    }

    pub(super) fn get_mut(&mut self, id: Id) -> Option<&mut V> {
        self.node_mut(id).map(|n| &mut n.value)
    }

    pub(super) fn key(&self, id: Id) -> Option<&K> {
        self.node(id).map(|n| &n.key)
    }

    /// The least recently touched entry of `list`.
    pub(super) fn oldest(&self, list: usize) -> Option<Id> {
        let head = self.lists.get(list)?.head;
        (head != NIL).then_some(head)
    }

    /// Adds `key` (not in the table) at the end of `list`.
    pub(super) fn insert(&mut self, key: K, value: V, list: usize) -> Id {
        let node = Node {
            key: key.clone(),
            value,
            prev: NIL,
            next: NIL,
            list,
        };
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.nodes.get_mut(id as usize) {
                    *slot = Some(node);
                }
                id
            }
            None => {
                self.nodes.push(Some(node));
                (self.nodes.len() - 1) as Id
            }
        };
        self.map.insert(key, id);
        self.link(id, list);
        id
    }

    /// Moves `id` to the end of `list`: touched now.
    pub(super) fn touch(&mut self, id: Id, list: usize) {
        let Some(node) = self.node(id) else {
            return;
        };
        if node.list == list && node.next == NIL {
            return;
        }
        self.unlink(id);
        self.link(id, list);
    }

    /// Takes `id` out of the table.
    pub(super) fn remove(&mut self, id: Id) -> Option<(K, V)> {
        self.node(id)?;
        self.unlink(id);
        let node = self.nodes.get_mut(id as usize)?.take()?;
        self.map.remove(&node.key);
        self.free.push(id);
        Some((node.key, node.value))
    }

    /// Every entry, in no particular order.
    pub(super) fn ids(&self) -> Vec<Id> {
        self.map.values().copied().collect()
    }

    fn link(&mut self, id: Id, list: usize) {
        let Some(l) = self.lists.get(list).copied() else {
            return;
        };
        if let Some(node) = self.node_mut(id) {
            node.list = list;
            node.prev = l.tail;
            node.next = NIL;
        }
        if l.tail != NIL
            && let Some(tail) = self.node_mut(l.tail)
        {
            tail.next = id;
        }
        if let Some(l) = self.lists.get_mut(list) {
            if l.head == NIL {
                l.head = id;
            }
            l.tail = id;
            l.len += 1;
        }
    }

    fn unlink(&mut self, id: Id) {
        let Some((prev, next, list)) = self.node(id).map(|n| (n.prev, n.next, n.list)) else {
            return;
        };
        if prev != NIL
            && let Some(p) = self.node_mut(prev)
        {
            p.next = next;
        }
        if next != NIL
            && let Some(n) = self.node_mut(next)
        {
            n.prev = prev;
        }
        if let Some(l) = self.lists.get_mut(list) {
            if l.head == id {
                l.head = next;
            }
            if l.tail == id {
                l.tail = prev;
            }
            l.len = l.len.saturating_sub(1);
        }
        if let Some(node) = self.node_mut(id) {
            node.prev = NIL;
            node.next = NIL;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(t: &Table<u32, u32, 2>, list: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut id = t.oldest(list);
        while let Some(i) = id {
            out.push(*t.key(i).unwrap());
            let next = t.node(i).unwrap().next;
            id = (next != NIL).then_some(next);
        }
        out
    }

    #[test]
    fn lists_in_touch_order() {
        let mut t: Table<u32, u32, 2> = Table::new(2);
        let a = t.insert(1, 10, 0);
        let b = t.insert(2, 20, 0);
        let _c = t.insert(3, 30, 1);
        assert_eq!(order(&t, 0), vec![1, 2]);
        t.touch(a, 0);
        assert_eq!(order(&t, 0), vec![2, 1]);
        t.touch(b, 1);
        assert_eq!(order(&t, 0), vec![1]);
        assert_eq!(order(&t, 1), vec![3, 2]);
        assert_eq!(t.remove(a), Some((1, 10)));
        assert_eq!(t.len_of(0), 0);
        assert_eq!(t.oldest(0), None);
        let d = t.insert(4, 40, 0);
        assert_eq!(d, a, "the slot is reused");
        assert_eq!(t.find(&4), Some(d));
        assert_eq!(t.find(&1), None);
        assert_eq!(t.len(), 3);
        assert_eq!(*t.get(d).unwrap(), 40);
    }
}
