//! `ColdRef`: where a spilled value lives, the pointer a cold entry keeps in RAM instead of it.

/// A record in a segment file. Records are never rewritten in place and segment ids are never
/// reused, so two equal refs always name the same bytes: an entry still holding the ref a
/// reader started from has not changed since (the check a cold read makes before installing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColdRef {
    pub segment: u32,
    /// Byte offset of the record's header in the segment.
    pub offset: u32,
    /// Bytes of the whole record (header, key and stored payload).
    pub length: u32,
    /// The value's type (`Kind` as a number), so TYPE never reads the disk.
    pub kind: u8,
}

const _: () = assert!(std::mem::size_of::<ColdRef>() <= 16);
