//! The id generator, hex, and UUID v4 request ids.

use std::collections::HashSet;

use crate::ids::{Rng, hex, unhex};

#[test]
fn hex_round_trips_and_refuses_what_is_not_lowercase_hex() {
    assert_eq!(hex(&[0x00, 0x9f, 0xa0, 0xff]), "009fa0ff");
    assert_eq!(unhex::<4>(b"009fa0ff"), Some([0x00, 0x9f, 0xa0, 0xff]));
    assert_eq!(unhex::<4>(b"009FA0FF"), None);
    assert_eq!(unhex::<4>(b"009fa0f"), None);
    assert_eq!(unhex::<2>(b"0g00"), None);
}

#[test]
fn the_same_seed_gives_the_same_ids_and_stirring_changes_them() {
    let (mut a, mut b) = (Rng::new(42), Rng::new(42));
    assert_eq!(a.next_u64(), b.next_u64());
    b.stir(1);
    assert_ne!(a.next_u64(), b.next_u64());
    assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
}

#[test]
fn ids_do_not_repeat() {
    let mut rng = Rng::new(0);
    let ids: HashSet<[u8; 16]> = (0..10_000).map(|_| rng.nonzero_bytes()).collect();
    assert_eq!(ids.len(), 10_000);
}

#[test]
fn unit_stays_in_zero_to_one() {
    let mut rng = Rng::new(5);
    let draws: Vec<f64> = (0..10_000).map(|_| rng.unit()).collect();
    assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    assert!((0.45..0.55).contains(&mean), "mean {mean}");
}

/// `xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`, lowercase hex.
pub fn is_uuid_v4(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

#[test]
fn request_ids_are_uuid_v4() {
    let mut rng = Rng::new(9);
    let ids: HashSet<String> = (0..1000).map(|_| rng.uuid_v4()).collect();
    assert_eq!(ids.len(), 1000);
    for id in &ids {
        assert!(is_uuid_v4(id), "{id}");
    }
    assert!(!is_uuid_v4("not-a-uuid"));
}

#[test]
fn ids_are_formatted_into_fixed_arrays_exactly() {
    use crate::ids::write_hex;
    use crate::trace::{Span, TRACEPARENT_LEN};
    let mut out = [0u8; 8];
    assert_eq!(write_hex(&[0x00, 0x9f, 0xa0, 0xff], &mut out), "009fa0ff");
    let span = Span {
        trace_id: *b"\x4b\xf9\x2f\x35\x77\xb3\x4d\xa6\xa3\xce\x92\x9d\x0e\x0e\x47\x36",
        span_id: [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
        parent_id: None,
        flags: 0x01,
    };
    let expected = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(
        span.write_traceparent(&mut [0xff; TRACEPARENT_LEN]),
        expected
    );
    assert_eq!(span.traceparent(), expected);
    // The uuid's groups are the bytes in order: the same digits as `hex` of 16 bytes.
    let (mut a, mut b) = (Rng::new(5), Rng::new(5));
    let id = a.uuid_v4();
    let mut bytes: [u8; 16] = b.nonzero_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    assert_eq!(id.replace('-', ""), hex(&bytes));
    assert!(is_uuid_v4(&id), "{id}");
}
