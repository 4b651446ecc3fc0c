//! The byte pipelines. Backup: pg_dump's stdout → multithreaded zstd → age → SHA-256 →
//! store, in parts as it flows (no full-size temporary file). Restore and verify: the same
//! in reverse. The synchronous stages run on a blocking thread; chunks cross to the async
//! store through a bounded channel, so memory stays flat whatever the database's size.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Chunks sent to the store: big enough to be cheap, small enough to keep memory flat.
pub const CHUNK: usize = 1024 * 1024;

/// Counts the bytes that pass, for progress and the manifest.
pub struct CountingReader<R> {
    pub inner: R,
    pub count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Hashes and counts what it writes, then hands it to the channel in chunks.
pub struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
    hasher: Sha256,
    pub stored: Arc<AtomicU64>,
}

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Bytes>, stored: Arc<AtomicU64>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buffer: Vec::with_capacity(CHUNK),
            hasher: Sha256::new(),
            stored,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the store stopped taking data"))
    }

    /// Sends what is left and returns the SHA-256 of everything written.
    pub fn finish(mut self) -> io::Result<String> {
        self.send()?;
        Ok(hex(&self.hasher.finalize()))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.stored.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads chunks from a channel (fed by the store's download), hashing as it goes.
pub struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
    hasher: Sha256,
    pub read: u64,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Result<Bytes, String>>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Bytes::new(),
            hasher: Sha256::new(),
            read: 0,
        }
    }

    /// The SHA-256 of everything read so far.
    pub fn digest(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(crate::fault::Tagged::Store(e).into_io()),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        let chunk = self.current.split_to(n);
        buf[..n].copy_from_slice(&chunk);
        self.hasher.update(&chunk);
        self.read += n as u64;
        Ok(n)
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Drains a reader to its end, counting bytes (verify's "decompress to the end").
pub fn drain<R: Read>(mut reader: R) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}
