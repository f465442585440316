//! Durations in the config: a bare number of seconds, or text such as `250ms`, `10s`,
//! `5m`, `1h` (the same forms as weft's own YAML config).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration read from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationSpec(pub Duration);

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(f64),
            Text(String),
        }
        let parsed = match Raw::deserialize(d)? {
            Raw::Seconds(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
            Raw::Seconds(_) => None,
            Raw::Text(t) => parse(&t),
        };
        parsed.map(DurationSpec).ok_or_else(|| {
            serde::de::Error::custom("expected a duration such as 250ms, 10s, 5m, 1h")
        })
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h` or a bare number of seconds.
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}
