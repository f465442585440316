//! W3C trace context (`traceparent`): parse what the caller sent, and make the value this
//! hop sends upstream.
//!
//! `traceparent` is `VERSION-TRACE_ID-PARENT_ID-FLAGS`: 2, 32, 16 and 2 lowercase hex
//! digits. Version `00` is exactly 55 characters. A later version (`01` to `fe`) is read
//! the same way as long as what follows the first 55 characters starts with `-` (the
//! spec's rule for versions this code does not know); `ff` is invalid. An all-zero trace
//! id or parent id is invalid. This hop always sends version `00`.

use crate::ids::{Rng, ascii, unhex, write_hex};

/// The length of a version `00` `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;

/// The `sampled` bit of the flags.
pub const SAMPLED: u8 = 0x01;

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id.
    pub trace_id: [u8; 16],
    /// The caller's span id.
    pub parent_id: [u8; 8],
    /// The trace flags.
    pub flags: u8,
}

/// Why a `traceparent` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Wrong length or dashes out of place.
    Shape,
    /// A field that is not lowercase hex.
    Hex,
    /// Version `ff`.
    Version,
    /// An all-zero trace id or parent id.
    Zero,
}

impl TraceParent {
    /// Parses a `traceparent` value.
    pub fn parse(value: &str) -> Result<TraceParent, Invalid> {
        let b = value.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return Err(Invalid::Shape);
        }
        let [version] = unhex::<1>(&b[..2]).ok_or(Invalid::Hex)?;
        if version == 0xff {
            return Err(Invalid::Version);
        }
        // Version 00 has exactly four fields; a later one may add more after a dash.
        if (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return Err(Invalid::Shape);
        }
        let trace_id = unhex::<16>(&b[3..35]).ok_or(Invalid::Hex)?;
        let parent_id = unhex::<8>(&b[36..52]).ok_or(Invalid::Hex)?;
        let [flags] = unhex::<1>(&b[53..55]).ok_or(Invalid::Hex)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return Err(Invalid::Zero);
        }
        Ok(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }
}

/// The trace context of one request at this hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The trace id: the caller's, or new.
    pub trace_id: [u8; 16],
    /// A new span id for the upstream request (its parent id).
    pub span_id: [u8; 8],
    /// The caller's span id, when the trace was continued.
    pub parent_id: Option<[u8; 8]>,
    /// The flags sent upstream.
    pub flags: u8,
}

/// How the span came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A valid `traceparent` came in: its trace continues.
    Continued,
    /// None came in: a new trace.
    Started,
    /// An invalid one came in: replaced by a new trace.
    Replaced(Invalid),
}

impl Span {
    /// Continues the caller's trace (`incoming`, the `traceparent` value) with a new span
    /// id, keeping its flags; or, when there is none or it is invalid, starts a new trace,
    /// sampled with probability `sampling_rate`.
    pub fn next(incoming: Option<&str>, rng: &mut Rng, sampling_rate: f64) -> (Span, Origin) {
        let parsed = incoming.map(TraceParent::parse);
        if let Some(Ok(parent)) = parsed {
            let span = Span {
                trace_id: parent.trace_id,
                span_id: rng.nonzero_bytes(),
                parent_id: Some(parent.parent_id),
                flags: parent.flags,
            };
            return (span, Origin::Continued);
        }
        let sampled = rng.unit() < sampling_rate;
        let span = Span {
            trace_id: rng.nonzero_bytes(),
            span_id: rng.nonzero_bytes(),
            parent_id: None,
            flags: if sampled { SAMPLED } else { 0 },
        };
        let origin = match parsed {
            Some(Err(why)) => Origin::Replaced(why),
            _ => Origin::Started,
        };
        (span, origin)
    }

    /// Whether the sampled flag is set.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The `traceparent` value to send upstream (version `00`).
    pub fn traceparent(&self) -> String {
        self.write_traceparent(&mut [0; TRACEPARENT_LEN])
            .to_string()
    }

    /// [`Span::traceparent`] written into `out`, without allocating.
    pub fn write_traceparent<'a>(&self, out: &'a mut [u8; TRACEPARENT_LEN]) -> &'a str {
        out.copy_from_slice(b"00-________________________________-________________-__");
        write_hex(&self.trace_id, &mut out[3..35]);
        write_hex(&self.span_id, &mut out[36..52]);
        write_hex(&[self.flags], &mut out[53..55]);
        ascii(out)
    }
}
