//! Why reading a backup stopped, as types: its bytes are bad ([`Damage`]: a size or
//! checksum that does not match the manifest, age's authentication, zstd's format or
//! pg_dump's archive format), the key does not open it, or the store failed. Only a
//! [`Damage`] makes tend say "damaged"; everything else (a wrong key, a store that went
//! away, a pg_restore that refused a statement) is named for what it is.
//!
//! The reading layers are stacked `Read`ers, so an error travels up as an `io::Error`.
//! Each layer tags the errors it raises itself ([`Tagged`]) and passes tagged ones through
//! untouched, so the top knows which layer failed without reading any message.

use std::io::{self, Read};

/// What is wrong with a backup's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("its object {object} is missing from the store")]
    Missing { object: String },
    #[error("its object {object} holds {stored} bytes, the manifest says {expected}")]
    Size {
        object: String,
        stored: u64,
        expected: u64,
    },
    #[error(
        "the checksum of its stored bytes ({object}) does not match the manifest (a flipped, missing or extra byte)"
    )]
    Checksum { object: String },
    #[error("its encrypted data fails age's authentication: {0}")]
    Decryption(String),
    #[error("its compressed data is not valid zstd: {0}")]
    Compression(String),
    #[error("its pg_dump archive is malformed: {0}")]
    Archive(String),
    #[error("it decompresses to {raw} bytes, the manifest says {expected}")]
    Length { raw: u64, expected: u64 },
}

/// An error raised by one reading layer, carried inside an `io::Error`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Tagged {
    /// The store's download failed (the bytes never arrived: no judgement on them).
    #[error("reading from the store failed: {0}")]
    Store(String),
    #[error("{0}")]
    Damage(Damage),
}

impl Tagged {
    pub(crate) fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// The layer that raised `err`, when one did.
pub(crate) fn tag_of(err: &io::Error) -> Option<&Tagged> {
    err.get_ref()?.downcast_ref::<Tagged>()
}

/// A reading layer: errors it raises itself become the damage `kind` makes of them;
/// errors of the layers below pass through as they are.
pub(crate) struct Layer<R> {
    pub inner: R,
    pub kind: fn(String) -> Damage,
}

impl<R: Read> Read for Layer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if tag_of(&e).is_some() || e.kind() == io::ErrorKind::Interrupted {
                e
            } else {
                Tagged::Damage((self.kind)(e.to_string())).into_io()
            }
        })
    }
}
