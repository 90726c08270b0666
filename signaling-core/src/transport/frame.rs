//! [`Frame`]: one text frame, shared rather than copied.
use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;

use bytes::{Bytes, BytesMut};
use bytes_utils::{Str, StrMut};

/// One text frame as transports carry it: immutable UTF-8 text whose clones share one buffer.
///
/// - Build one from a `String` (no copy), a `&str` (one copy), a `&'static str`
///   ([`Frame::from_static`], no copy) or checked bytes ([`Frame::from_utf8`], no copy).
/// - Read it as a `&str`: it dereferences to `str`, and compares equal to `str`, `&str` and
///   `String` holding the same text.
/// - Cloning costs a reference count, not an allocation: a relay hands one frame to every
///   receiver in a room, and a transport may cut many frames out of one buffer.
///
/// **Memory.** A frame cut out of a larger buffer ([`FrameBlock`]) keeps that whole buffer
/// alive while it lives. Code that keeps frames for long (a mailbox) keeps a copy of its own:
/// [`Frame::detached`].
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame(Str);

impl Frame {
    /// An empty frame.
    pub fn new() -> Self {
        Self(Str::new())
    }

    /// A frame of static text, without copying it.
    pub const fn from_static(text: &'static str) -> Self {
        Self(Str::from_static(text))
    }

    /// A frame of these bytes, which must be UTF-8. No copy is made.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        Str::from_inner(bytes).map(Self).map_err(|e| e.utf8_error())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text's bytes, sharing the frame's buffer.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_inner()
    }

    /// A frame with the same text in a buffer of its own, so that it no longer keeps alive a
    /// larger buffer it was cut from. Costs one copy; for frames kept for long.
    #[must_use]
    pub fn detached(&self) -> Self {
        Self::from(self.as_str())
    }
}

impl Deref for Frame {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Frame {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Borrow<str> for Frame {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Self(Str::from(text))
    }
}

impl From<&String> for Frame {
    fn from(text: &String) -> Self {
        Self::from(text.as_str())
    }
}

impl From<&str> for Frame {
    fn from(text: &str) -> Self {
        Self(Str::from(text))
    }
}

impl From<Box<str>> for Frame {
    fn from(text: Box<str>) -> Self {
        Self(Str::from(text))
    }
}

impl From<Cow<'_, str>> for Frame {
    fn from(text: Cow<'_, str>) -> Self {
        match text {
            Cow::Borrowed(text) => Self::from(text),
            Cow::Owned(text) => Self::from(text),
        }
    }
}

impl From<&Frame> for Frame {
    fn from(frame: &Frame) -> Self {
        frame.clone()
    }
}

impl From<Frame> for String {
    /// The text, copied.
    fn from(frame: Frame) -> Self {
        frame.as_str().to_owned()
    }
}

impl From<Frame> for Bytes {
    fn from(frame: Frame) -> Self {
        frame.into_bytes()
    }
}

/// A buffer that frames are copied into one after another, each [`push`](Self::push) giving a
/// [`Frame`] that shares the block: many small frames for one allocation. For transports that
/// receive frames into a buffer of their own and must copy them out.
///
/// Every frame keeps the whole block alive: size blocks so that this does not matter (a few
/// KiB), and start a new one when [`spare`](Self::spare) is too small for the next frame.
#[derive(Debug, Default)]
pub struct FrameBlock(StrMut);

impl FrameBlock {
    /// An empty block with room for `bytes` bytes of frames.
    ///
    /// # Panics
    /// As `Vec::with_capacity`: if `bytes` exceeds `isize::MAX` (or the allocation fails).
    pub fn with_capacity(bytes: usize) -> Self {
        Self(StrMut::from_inner(BytesMut::with_capacity(bytes)).unwrap_or_default())
    }

    /// How many more bytes of frames fit without a new allocation.
    pub fn spare(&self) -> usize {
        self.0.inner().capacity() - self.0.len()
    }

    /// Copies `text` into the block and returns it as a frame. If it does not fit, the block
    /// grows into a new allocation (the frames already given keep the old one).
    pub fn push(&mut self, text: &str) -> Frame {
        self.0.push_str(text);
        Frame(self.0.split_built().freeze())
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

macro_rules! eq_text {
    ($($other:ty),*) => {$(
        impl PartialEq<$other> for Frame {
            fn eq(&self, other: &$other) -> bool {
                self.as_str() == AsRef::<str>::as_ref(other)
            }
        }

        impl PartialEq<Frame> for $other {
            fn eq(&self, other: &Frame) -> bool {
                AsRef::<str>::as_ref(self) == other.as_str()
            }
        }
    )*};
}

eq_text!(str, &str, String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_text_and_compare_as_text() {
        let frame = Frame::from(String::from(r#"{"type":"x"}"#));
        let clone = frame.clone();
        assert_eq!(frame.as_ptr(), clone.as_ptr(), "a clone shares the buffer");
        assert_eq!(frame, r#"{"type":"x"}"#);
        assert_eq!(r#"{"type":"x"}"#, frame);
        assert_eq!(frame, String::from(r#"{"type":"x"}"#));
        assert_eq!(format!("{frame:?}"), format!("{:?}", r#"{"type":"x"}"#));
        assert_eq!(frame.to_string(), r#"{"type":"x"}"#);
        let detached = frame.detached();
        assert_eq!(detached, frame);
        assert_ne!(
            detached.as_ptr(),
            frame.as_ptr(),
            "a detached frame has its own buffer"
        );
        assert_eq!(String::from(clone), r#"{"type":"x"}"#);
    }

    #[test]
    fn bytes_must_be_utf8() {
        assert!(Frame::from_utf8(Bytes::from_static(b"\xff")).is_err());
        let frame = Frame::from_utf8(Bytes::from_static("é".as_bytes())).expect("UTF-8");
        assert_eq!(frame, "é");
        assert_eq!(Bytes::from(frame), Bytes::from_static("é".as_bytes()));
        assert_eq!(Frame::from_static("a"), Frame::from("a"));
        assert!(Frame::new().is_empty());
    }

    #[test]
    fn frames_of_a_block_share_it_until_it_is_full() {
        let mut block = FrameBlock::with_capacity(16);
        assert_eq!(block.spare(), 16);
        let a = block.push("{\"a\":1}");
        let b = block.push("é");
        assert_eq!((a.as_str(), b.as_str()), ("{\"a\":1}", "é"));
        assert_eq!(b.as_ptr(), a.as_ptr().wrapping_add(a.len()), "one buffer");
        assert_eq!(block.spare(), 16 - a.len() - b.len());
        // Larger than what is left: it still arrives whole, in a new allocation.
        let c = block.push("0123456789");
        assert_eq!(c, "0123456789");
        assert_eq!((a.as_str(), b.as_str()), ("{\"a\":1}", "é"));
        assert_eq!(FrameBlock::default().push("x"), "x");
    }
}
