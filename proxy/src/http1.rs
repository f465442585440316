//! HTTP/1.1 on the wire, the pieces both sides share (RFC 9112 §5, §7.1): a field line, the
//! chunked coding out, and the chunked decoder in. weft's server reads request bodies and
//! writes responses with them (`server::h1`); its upstream client writes request bodies and
//! reads responses with them (`cluster::http1::wire`, which adds the request and response
//! heads).

use std::fmt::Write;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The longest chunk-size line (with its extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// The most fields a trailer section may carry.
const MAX_TRAILER_FIELDS: usize = 128;
/// The most bytes a trailer section may take.
const MAX_TRAILER_BYTES: usize = 256 * 1024;

/// Why a chunked body could not be read (the caller says whose body it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("{0}")]
    Framing(&'static str),
    #[error("malformed trailers")]
    Trailers,
}

/// Writes one field line, `name: value` and CRLF.
pub fn encode_field(name: &HeaderName, value: &HeaderValue, out: &mut BytesMut) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes one chunk of a chunked body (`data` must not be empty).
pub fn encode_chunk(data: &[u8], out: &mut BytesMut) {
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Writes the end of a chunked body: the last chunk and the trailer section.
pub fn encode_last_chunk(trailers: Option<&HeaderMap>, out: &mut BytesMut) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        encode_field(name, value, out);
    }
    out.extend_from_slice(b"\r\n");
}

/// What the chunked decoder found next.
#[derive(Debug)]
pub enum Decoded {
    Data(Bytes),
    Trailers(HeaderMap),
    /// The body has ended (after its trailers, if any).
    End,
    /// More bytes are needed.
    More,
}

/// Decodes a chunked body incrementally from a read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedDecoder {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// Expecting the trailer section (after the last chunk).
    Trailers,
    Done,
}

impl ChunkedDecoder {
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match *self {
                ChunkedDecoder::Done => return Ok(Decoded::End),
                ChunkedDecoder::Size => {
                    let Some(lf) = buf.iter().position(|b| *b == b'\n') else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(ChunkError::Framing("chunk-size line too long"));
                        }
                        return Ok(Decoded::More);
                    };
                    if lf == 0 || buf[lf - 1] != b'\r' {
                        return Err(ChunkError::Framing("chunk-size line not ended by CRLF"));
                    }
                    let size = chunk_size(&buf[..lf - 1])?;
                    buf.advance(lf + 1);
                    *self = if size == 0 {
                        ChunkedDecoder::Trailers
                    } else {
                        ChunkedDecoder::Data(size)
                    };
                }
                ChunkedDecoder::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    *self = if left == 0 {
                        ChunkedDecoder::DataEnd
                    } else {
                        ChunkedDecoder::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkedDecoder::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError::Framing("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    *self = ChunkedDecoder::Size;
                }
                ChunkedDecoder::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        *self = ChunkedDecoder::Done;
                        return Ok(Decoded::End);
                    }
                    let mut headers = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
                    let (len, map) = match httparse::parse_headers(buf, &mut headers) {
                        Ok(httparse::Status::Complete((len, parsed))) => {
                            let mut map = HeaderMap::with_capacity(parsed.len());
                            for h in parsed.iter() {
                                let name = HeaderName::from_bytes(h.name.as_bytes())
                                    .map_err(|_| ChunkError::Trailers)?;
                                let value = HeaderValue::from_bytes(h.value)
                                    .map_err(|_| ChunkError::Trailers)?;
                                map.append(name, value);
                            }
                            (len, map)
                        }
                        Ok(httparse::Status::Partial) if buf.len() > MAX_TRAILER_BYTES => {
                            return Err(ChunkError::Trailers);
                        }
                        Ok(httparse::Status::Partial) => return Ok(Decoded::More),
                        Err(_) => return Err(ChunkError::Trailers),
                    };
                    buf.advance(len);
                    *self = ChunkedDecoder::Done;
                    return Ok(Decoded::Trailers(map));
                }
            }
        }
    }
}

/// The size of a chunk-size line (without its CRLF): hex digits, then optional extensions.
fn chunk_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError::Framing("no chunk size"));
    }
    if digits > 15 {
        return Err(ChunkError::Framing("chunk size too large"));
    }
    let rest = line[digits..].trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return Err(ChunkError::Framing("invalid chunk-size line"));
    }
    if rest.iter().any(|b| *b == b'\r' || *b == b'\n' || *b == 0) {
        return Err(ChunkError::Framing(
            "control character in a chunk extension",
        ));
    }
    let text =
        std::str::from_utf8(&line[..digits]).map_err(|_| ChunkError::Framing("no chunk size"))?;
    u64::from_str_radix(text, 16).map_err(|_| ChunkError::Framing("chunk size too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_encode_with_hex_sizes_and_trailers() {
        let mut out = BytesMut::new();
        encode_chunk(&[b'x'; 26], &mut out);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        encode_last_chunk(Some(&trailers), &mut out);
        assert_eq!(
            &out[..],
            format!("1a\r\n{}\r\n0\r\ngrpc-status: 0\r\n\r\n", "x".repeat(26)).as_bytes()
        );
    }

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, Option<HeaderMap>), ChunkError> {
        let mut decoder = ChunkedDecoder::Size;
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut trailers = None;
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::Trailers(map) => trailers = Some(map),
                Decoded::End => return Ok((body, trailers)),
                Decoded::More => {
                    assert!(fed < input.len(), "ran out of input");
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let input = b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nx-t: 1\r\n\r\n";
        for step in [1, 2, 5, input.len()] {
            let (body, trailers) = decode_all(input, step).unwrap();
            assert_eq!(body, b"abc0123456789abcdef");
            assert_eq!(trailers.unwrap()["x-t"], "1");
        }
        let (body, trailers) = decode_all(b"2\r\nok\r\n0\r\n\r\n", 3).unwrap();
        assert_eq!((body.as_slice(), trailers), (&b"ok"[..], None));
    }

    #[test]
    fn malformed_chunks_are_refused() {
        for bad in [
            &b"3\nabc\r\n0\r\n\r\n"[..],
            b"x\r\n",
            b"3\r\nabcX\r\n",
            b"ffffffffffffffff1\r\n",
            b"3 junk\r\nabc\r\n",
        ] {
            assert!(
                decode_all(bad, 64).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn errors_name_what_is_wrong_and_not_whose_body() {
        let error = decode_all(b"3 junk\r\nabc\r\n", 64).unwrap_err();
        assert_eq!(error, ChunkError::Framing("invalid chunk-size line"));
        assert_eq!(error.to_string(), "invalid chunk-size line");
        let error = decode_all(b"0\r\nbad name: 1\r\n\r\n", 64).unwrap_err();
        assert_eq!(error.to_string(), "malformed trailers");
    }
}
