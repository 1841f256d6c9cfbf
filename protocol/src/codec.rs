//! The one codec: bincode 2 (pinned `=2.0.1`) with a size limit on every decode.
//!
//! Every message is checked against its semantic limits ([`Validate`]) before it is encoded and
//! after it is decoded, so a peer can neither make us allocate beyond [`FRAME_BYTES_MAX`] nor
//! hand us a value that breaks an invariant the rest of the code relies on.
//!
//! Frames on a stream are a 4-byte big-endian body length followed by the body.
//! [`FrameDecoder`] reassembles them from arbitrary byte pieces without doing I/O.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};

/// Largest frame body accepted or produced: fits one manifest of
/// [`crate::manifest::CHUNKS_PER_RENDITION_MAX`] chunk ids (1 MiB) or one chunk of
/// [`crate::content::CHUNK_BYTES_MAX`] plus headers. Worst case per open stream: this many bytes.
pub const FRAME_BYTES_MAX: usize = 1024 * 1024 + 64 * 1024;
/// Bytes of the length prefix in front of each frame.
pub const FRAME_HEADER_BYTES: usize = 4;

/// Why bytes could not be turned into a message (or a message into bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A frame or message is larger than [`FRAME_BYTES_MAX`].
    #[error("frame of {len} bytes exceeds the {max}-byte cap")]
    TooLarge {
        /// Declared or actual length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The bytes ended before the message did.
    #[error("message truncated")]
    Truncated,
    /// The message ended before the bytes did.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The bytes are not a valid encoding (bad tag, bad UTF-8, varint overflow...).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The message decoded but breaks a protocol limit or invariant.
    #[error("invalid message: {0}")]
    Invalid(&'static str),
}

/// Semantic limits of a message: counts, lengths, value ranges.
pub trait Validate {
    /// Ok when every limit holds.
    fn validate(&self) -> Result<(), CodecError>;
}

type Config = Configuration<LittleEndian, Varint, Limit<FRAME_BYTES_MAX>>;

fn config() -> Config {
    bincode::config::standard().with_limit::<FRAME_BYTES_MAX>()
}

/// Encodes `message` after checking its limits.
pub fn encode<T: bincode::Encode + Validate>(message: &T) -> Result<Vec<u8>, CodecError> {
    message.validate()?;
    let bytes = bincode::encode_to_vec(message, config())
        .map_err(|error| CodecError::Malformed(error.to_string()))?;
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max: FRAME_BYTES_MAX,
        });
    }
    Ok(bytes)
}

/// Decodes exactly one `T` from all of `bytes` and checks its limits.
pub fn decode<T: bincode::Decode<()> + Validate>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max: FRAME_BYTES_MAX,
        });
    }
    let (message, used): (T, usize) =
        bincode::decode_from_slice(bytes, config()).map_err(map_decode_error)?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    message.validate()?;
    Ok(message)
}

fn map_decode_error(error: bincode::error::DecodeError) -> CodecError {
    use bincode::error::DecodeError;
    match error {
        DecodeError::UnexpectedEnd { .. } => CodecError::Truncated,
        DecodeError::LimitExceeded => CodecError::TooLarge {
            len: usize::MAX,
            max: FRAME_BYTES_MAX,
        },
        other => CodecError::Malformed(other.to_string()),
    }
}

/// Appends `message` as one frame (length prefix + body) to `out`.
pub fn encode_frame<T: bincode::Encode + Validate>(
    message: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let body = encode(message)?;
    out.extend_from_slice(&frame_header(body.len())?);
    out.extend_from_slice(&body);
    Ok(())
}

/// The length prefix for a body of `body_len` bytes.
pub fn frame_header(body_len: usize) -> Result<[u8; FRAME_HEADER_BYTES], CodecError> {
    if body_len > FRAME_BYTES_MAX {
        return Err(CodecError::TooLarge {
            len: body_len,
            max: FRAME_BYTES_MAX,
        });
    }
    // FRAME_BYTES_MAX < u32::MAX, so the cast is lossless.
    Ok((body_len as u32).to_be_bytes())
}

/// Reads a length prefix, rejecting lengths over the cap before anything is allocated.
pub fn frame_body_len(header: [u8; FRAME_HEADER_BYTES]) -> Result<usize, CodecError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(CodecError::TooLarge {
            len,
            max: FRAME_BYTES_MAX,
        });
    }
    Ok(len)
}

/// Sans-IO frame reassembly: feed bytes as they arrive, take whole frames out.
///
/// Holds at most one frame header plus one body ([`FRAME_BYTES_MAX`]) of buffered bytes: a
/// declared length over the cap is an error as soon as the header is in.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Feeds `bytes`; returns every complete frame body now available, in order.
    /// After an error the decoder must be dropped (the stream is out of sync).
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, CodecError> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let need = self.needed()?;
            let take = need.min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if let Some(frame) = self.take_complete()? {
                frames.push(frame);
            }
        }
        // A zero-length frame completes on its header alone.
        if let Some(frame) = self.take_complete()? {
            frames.push(frame);
        }
        Ok(frames)
    }

    /// Bytes still needed to finish the current header or body.
    fn needed(&self) -> Result<usize, CodecError> {
        if self.buffer.len() < FRAME_HEADER_BYTES {
            return Ok(FRAME_HEADER_BYTES - self.buffer.len());
        }
        let body = frame_body_len(self.header())?;
        Ok(FRAME_HEADER_BYTES + body - self.buffer.len())
    }

    fn header(&self) -> [u8; FRAME_HEADER_BYTES] {
        let mut header = [0u8; FRAME_HEADER_BYTES];
        header.copy_from_slice(&self.buffer[..FRAME_HEADER_BYTES]);
        header
    }

    fn take_complete(&mut self) -> Result<Option<Vec<u8>>, CodecError> {
        if self.buffer.len() < FRAME_HEADER_BYTES {
            return Ok(None);
        }
        let body = frame_body_len(self.header())?;
        if self.buffer.len() < FRAME_HEADER_BYTES + body {
            return Ok(None);
        }
        let frame = self.buffer.split_off(FRAME_HEADER_BYTES);
        self.buffer.clear();
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_decoder_handles_split_and_joined_frames() {
        let mut stream = Vec::new();
        for body in [&b"abc"[..], b"", b"0123456789"] {
            stream.extend_from_slice(&frame_header(body.len()).unwrap());
            stream.extend_from_slice(body);
        }
        for split in 0..stream.len() {
            let mut decoder = FrameDecoder::new();
            let mut frames = decoder.push(&stream[..split]).unwrap();
            frames.extend(decoder.push(&stream[split..]).unwrap());
            assert_eq!(
                frames,
                vec![b"abc".to_vec(), vec![], b"0123456789".to_vec()]
            );
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn oversized_header_is_rejected_before_buffering() {
        let mut decoder = FrameDecoder::new();
        let header = ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes();
        assert!(matches!(
            decoder.push(&header),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(decoder.buffered() <= FRAME_HEADER_BYTES);
        assert!(frame_header(FRAME_BYTES_MAX + 1).is_err());
    }
}
