//! Metric names: segments, status classes and codes.

use crate::config::StatusDetail;
use crate::stats::{Names, segment, status_segment};

#[test]
fn names_carry_route_cluster_and_status() {
    let names = Names::new("telemetry", "api", "backend");
    assert_eq!(
        names.requests("2xx"),
        "telemetry.route.api.cluster.backend.rq_2xx"
    );
    assert_eq!(
        names.latency(),
        "telemetry.route.api.cluster.backend.rq_time_ms"
    );
    let none = Names::new("edge.http", "", "");
    assert_eq!(
        none.requests("none"),
        "edge.http.route.none.cluster.none.rq_none"
    );
}

#[test]
fn segments_keep_only_letters_digits_and_underscores() {
    assert_eq!(segment("users-v2.api"), "users_v2_api");
    assert_eq!(segment("route_0"), "route_0");
    assert_eq!(segment("(filter)"), "_filter_");
    assert_eq!(segment(""), "none");
}

#[test]
fn statuses_are_classes_or_codes() {
    assert_eq!(status_segment(Some(204), StatusDetail::Class), "2xx");
    assert_eq!(status_segment(Some(503), StatusDetail::Class), "5xx");
    assert_eq!(status_segment(Some(404), StatusDetail::Code), "404");
    assert_eq!(status_segment(None, StatusDetail::Class), "none");
    assert_eq!(status_segment(None, StatusDetail::Code), "none");
}

#[test]
fn the_handle_maps_hash_with_fnv1a() {
    use crate::stats::Fnv;
    use std::hash::Hasher;
    let mut h = Fnv::default();
    h.write(b"foobar");
    assert_eq!(h.finish(), weft_sdk::hash::fnv1a64(b"foobar"));
    assert_eq!(Fnv::default().finish(), weft_sdk::hash::fnv1a64(b""));
}
