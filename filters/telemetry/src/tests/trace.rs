//! `traceparent`: parsing (lengths, hex, versions, zero ids) and the span sent upstream.

use crate::ids::{Rng, hex};
use crate::trace::{Invalid, Origin, SAMPLED, Span, TraceParent};

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn a_valid_version_00_value_parses() {
    let p = TraceParent::parse(VALID).unwrap();
    assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&p.parent_id), "00f067aa0ba902b7");
    assert_eq!(p.flags, 0x01);
    let p = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
    assert_eq!(p.flags, 0);
}

#[test]
fn bad_shapes_are_refused() {
    let cases = [
        ("", Invalid::Shape),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            Invalid::Shape,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            Invalid::Shape,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            Invalid::Shape,
        ),
        (
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Invalid::Shape,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            Invalid::Shape,
        ),
        (
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            Invalid::Hex,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bg-01",
            Invalid::Hex,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            Invalid::Hex,
        ),
        (
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Invalid::Hex,
        ),
        (
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Invalid::Version,
        ),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            Invalid::Zero,
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            Invalid::Zero,
        ),
    ];
    for (value, why) in cases {
        assert_eq!(TraceParent::parse(value), Err(why), "{value:?}");
    }
}

#[test]
fn a_later_version_is_read_by_its_first_four_fields() {
    let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
    let p = TraceParent::parse(later).unwrap();
    assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_ok());
    assert_eq!(
        TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"),
        Err(Invalid::Shape)
    );
}

#[test]
fn a_continued_trace_keeps_id_and_flags_with_a_new_span() {
    let mut rng = Rng::new(7);
    for flags in ["00", "01", "03"] {
        let incoming = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}");
        // The sampling rate applies to new traces only.
        let (span, origin) = Span::next(Some(&incoming), &mut rng, 0.0);
        assert_eq!(origin, Origin::Continued);
        assert_eq!(hex(&span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            span.parent_id.map(|p| hex(&p)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_ne!(hex(&span.span_id), "00f067aa0ba902b7");
        let out = span.traceparent();
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert!(out.ends_with(&format!("-{flags}")), "{out}");
        assert!(TraceParent::parse(&out).is_ok());
    }
}

#[test]
fn a_later_version_is_continued_as_version_00() {
    let mut rng = Rng::new(1);
    let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
    let (span, origin) = Span::next(Some(later), &mut rng, 1.0);
    assert_eq!(origin, Origin::Continued);
    assert!(
        span.traceparent()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    );
}

#[test]
fn no_or_an_invalid_traceparent_starts_a_new_trace() {
    let mut rng = Rng::new(3);
    let (a, origin) = Span::next(None, &mut rng, 1.0);
    assert_eq!(origin, Origin::Started);
    assert_eq!(a.parent_id, None);
    assert_eq!(a.flags, SAMPLED);
    let bad = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let (b, origin) = Span::next(Some(bad), &mut rng, 1.0);
    assert_eq!(origin, Origin::Replaced(Invalid::Zero));
    assert_ne!(b.trace_id, [0; 16]);
    assert_ne!(a.trace_id, b.trace_id);
    assert_ne!(a.span_id, b.span_id);
    let text = b.traceparent();
    assert_eq!(text.len(), 55);
    assert_eq!(
        TraceParent::parse(&text).map(|p| p.trace_id),
        Ok(b.trace_id)
    );
}

#[test]
fn sampling_follows_the_rate_for_new_traces() {
    let mut rng = Rng::new(11);
    let sampled = |rng: &mut Rng, rate: f64| {
        (0..1000)
            .filter(|_| Span::next(None, rng, rate).0.sampled())
            .count()
    };
    assert_eq!(sampled(&mut rng, 0.0), 0);
    assert_eq!(sampled(&mut rng, 1.0), 1000);
    let quarter = sampled(&mut rng, 0.25);
    assert!(
        (180..320).contains(&quarter),
        "{quarter} of 1000 sampled at 0.25"
    );
}
