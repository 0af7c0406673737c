//! A value for each side of a connection, indexed by [`Side`]: never out of bounds, never a computed index.

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Index, IndexMut};

use super::Side;

/// A key with exactly two values, which indexes a [`PerSide`]: [`Side`], or (in the replay's flow table) the
/// two ends of a connection before it is known which one is the client.
pub trait Pairing: Copy {
    /// Both values, the first one first.
    const BOTH: [Self; 2];

    /// Whether this is the first of the two values.
    fn is_first(self) -> bool;
}

impl Pairing for Side {
    const BOTH: [Side; 2] = [Side::Client, Side::Server];

    fn is_first(self) -> bool {
        self == Side::Client
    }
}

/// A value for each side of a connection (or for each value of another [`Pairing`]), indexed by it.
pub struct PerSide<T, K: Pairing = Side> {
    first: T,
    second: T,
    key: PhantomData<fn(K) -> K>,
}

impl<T, K: Pairing> PerSide<T, K> {
    /// The value of the first key (the client), then of the second (the server).
    pub const fn new(first: T, second: T) -> Self {
        PerSide {
            first,
            second,
            key: PhantomData,
        }
    }

    /// The value `f` gives for each key.
    pub fn from_fn(mut f: impl FnMut(K) -> T) -> Self {
        let [a, b] = K::BOTH;
        let first = f(a);
        PerSide::new(first, f(b))
    }

    /// The values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        [&self.first, &self.second].into_iter()
    }

    /// Each key with its value, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (K, &T)> {
        K::BOTH.into_iter().zip(self.iter())
    }

    /// The values changed by `f`.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> PerSide<U, K> {
        let first = f(self.first);
        PerSide::new(first, f(self.second))
    }

    /// References to the values.
    pub fn as_ref(&self) -> PerSide<&T, K> {
        PerSide::new(&self.first, &self.second)
    }
}

impl<T, K: Pairing> Index<K> for PerSide<T, K> {
    type Output = T;

    fn index(&self, key: K) -> &T {
        if key.is_first() {
            &self.first
        } else {
            &self.second
        }
    }
}

impl<T, K: Pairing> IndexMut<K> for PerSide<T, K> {
    fn index_mut(&mut self, key: K) -> &mut T {
        if key.is_first() {
            &mut self.first
        } else {
            &mut self.second
        }
    }
}

// Written out rather than derived: a derive would ask the key for the same traits.

impl<T: Default, K: Pairing> Default for PerSide<T, K> {
    fn default() -> Self {
        PerSide::new(T::default(), T::default())
    }
}

impl<T: Clone, K: Pairing> Clone for PerSide<T, K> {
    fn clone(&self) -> Self {
        PerSide::new(self.first.clone(), self.second.clone())
    }
}

impl<T: Copy, K: Pairing> Copy for PerSide<T, K> {}

impl<T: PartialEq, K: Pairing> PartialEq for PerSide<T, K> {
    fn eq(&self, other: &Self) -> bool {
        self.first == other.first && self.second == other.second
    }
}

impl<T: Eq, K: Pairing> Eq for PerSide<T, K> {}

impl<T: fmt::Debug, K: Pairing + fmt::Debug> fmt::Debug for PerSide<T, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_has_its_own_value() {
        let mut bytes: PerSide<u64> = PerSide::default();
        bytes[Side::Server] += 5;
        bytes[Side::Client] += 1;
        assert_eq!(bytes, PerSide::new(1, 5));
        assert_eq!(bytes.iter().sum::<u64>(), 6);
        assert_eq!(
            bytes.entries().collect::<Vec<_>>(),
            [(Side::Client, &1), (Side::Server, &5)]
        );
        let names = PerSide::<&str>::from_fn(Side::as_str);
        assert_eq!(names[Side::Server], "server");
        assert_eq!(bytes.map(|n| n * 2)[Side::Server], 10);
        assert_eq!(
            format!("{names:?}"),
            r#"{Client: "client", Server: "server"}"#
        );
    }
}
