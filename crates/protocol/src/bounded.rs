//! Collections whose decoding allocates in step with the input actually read.
//!
//! serde's stock `Vec<T>` trusts the declared length up to a megabyte of pre-allocation; a
//! five-byte frame could make the server reserve that much. These types reserve at most
//! [`MAX_PREALLOCATED_ELEMENTS`] ahead and reject more than `N` elements.

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::MAX_PREALLOCATED_ELEMENTS;

/// A `Vec<T>` of at most `N` elements.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bounded<T, const N: usize>(Vec<T>);

impl<T, const N: usize> Bounded<T, N> {
    /// Wraps `items` if there are at most `N` of them.
    pub fn new(items: Vec<T>) -> Result<Self, Vec<T>> {
        if items.len() <= N {
            Ok(Self(items))
        } else {
            Err(items)
        }
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// The elements, unwrapped.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T, const N: usize> core::ops::Deref for Bounded<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for Bounded<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize, const N: usize> Serialize for Bounded<T, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoundedVisitor<T, const N: usize>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for BoundedVisitor<T, N> {
            type Value = Bounded<T, N>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a sequence of at most {N} elements")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let declared = seq.size_hint().unwrap_or(0);
                if declared > N {
                    return Err(de::Error::invalid_length(declared, &self));
                }
                let mut items = Vec::with_capacity(declared.min(MAX_PREALLOCATED_ELEMENTS));
                while let Some(item) = seq.next_element()? {
                    if items.len() == N {
                        return Err(de::Error::invalid_length(N + 1, &self));
                    }
                    items.push(item);
                }
                Ok(Bounded(items))
            }
        }

        deserializer.deserialize_seq(BoundedVisitor::<T, N>(PhantomData))
    }
}

/// A list bounded only by the frame that carries it (server frames), decoded with the same
/// in-step allocation as [`Bounded`].
pub type List<T> = Bounded<T, { usize::MAX }>;

impl<T> From<Vec<T>> for List<T> {
    fn from(items: Vec<T>) -> Self {
        Bounded(items)
    }
}

impl<T> FromIterator<T> for List<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Bounded(iter.into_iter().collect())
    }
}

/// Opaque bytes (an encoded board snapshot), carried as one length-prefixed blob.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;

        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Bytes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }

            // postcard hands out a slice of the input, so the copy is exactly as long as the
            // bytes that were really there.
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }

            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }

        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}
