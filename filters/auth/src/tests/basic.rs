//! Basic auth: the header, and both password hash formats.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::basic::{PasswordHash, parse_authorization};

/// The bcrypt hash of `password` (`$2b$`, the test-only salt below), made with the bcrypt
/// primitive; `a_known_bcrypt_vector_verifies` ties the format to other implementations.
pub fn bcrypt_hash(password: &str, cost: u32) -> String {
    let salt = *b"test-only-salt!!";
    let mut key = password.as_bytes().to_vec();
    key.push(0);
    let out = bcrypt::bcrypt(cost, salt, &key);
    let b64 = base64::engine::GeneralPurpose::new(
        &base64::alphabet::BCRYPT,
        base64::engine::general_purpose::NO_PAD,
    );
    format!(
        "$2b${cost:02}${}{}",
        b64.encode(salt),
        b64.encode(&out[..23])
    )
}

#[test]
fn bcrypt_hashes_verify_the_right_password_only() {
    let hash = PasswordHash::parse(&bcrypt_hash("hunter2", 5)).unwrap();
    assert!(hash.verify(b"hunter2"));
    assert!(!hash.verify(b"hunter3"));
    assert!(!hash.verify(b""));
}

#[test]
fn a_known_bcrypt_vector_verifies() {
    // From the OpenBSD bcrypt test vectors: "U*U" at cost 5.
    let hash = PasswordHash::parse("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")
        .unwrap();
    assert!(hash.verify(b"U*U"));
    assert!(!hash.verify(b"U*V"));
}

#[test]
fn sha256_hashes_verify() {
    // sha256("hunter2")
    let hash = PasswordHash::parse(
        "sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7",
    )
    .unwrap();
    assert!(hash.verify(b"hunter2"));
    assert!(!hash.verify(b"hunter"));
}

#[test]
fn bad_hashes_and_costs_are_config_errors() {
    for bad in [
        "plain",
        "sha256:abc",
        "$2x$05$aaaa",
        "$2b$05$short",
        "md5:abc",
    ] {
        assert!(PasswordHash::parse(bad).is_err(), "{bad}");
    }
    let too_slow = bcrypt_hash("x", 12);
    assert!(
        PasswordHash::parse(&too_slow)
            .unwrap_err()
            .contains("cost 12")
    );
}

#[test]
fn authorization_headers_parse() {
    let value = format!("Basic {}", STANDARD.encode("alice:pa:ss"));
    assert_eq!(
        parse_authorization(&value),
        Some(("alice".into(), b"pa:ss".to_vec()))
    );
    assert_eq!(
        parse_authorization(&format!("basic {}", STANDARD.encode("bob:"))),
        Some(("bob".into(), Vec::new()))
    );
    assert_eq!(parse_authorization("Bearer abc"), None);
    assert_eq!(parse_authorization("Basic !!!"), None);
    assert_eq!(
        parse_authorization(&format!("Basic {}", STANDARD.encode("nocolon"))),
        None
    );
}

/// Time of one bcrypt check per cost (reported in README.md; run with --nocapture).
#[test]
fn bcrypt_verify_time() {
    for cost in [4, 5, 6] {
        let hash = PasswordHash::parse(&bcrypt_hash("hunter2", cost)).unwrap();
        let start = std::time::Instant::now();
        assert!(hash.verify(b"hunter2"));
        eprintln!(
            "bcrypt cost {cost}: {:?} (this build's profile)",
            start.elapsed()
        );
    }
}
