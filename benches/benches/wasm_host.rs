//! Micro-benchmarks of weft's proxy-wasm host (docs/benchmarks.md has the results):
//!
//! - `host_call_round_trip`: a guest call that makes one host call, against an empty guest
//!   call (the difference is the cost of one host call).
//! - `header_map_read`: one `on_request_headers` that reads the whole request header map.
//! - `chain`: one request through a chain of 1 or 4 filters (`noop`, `add_header`).
//!
//! Run with `cargo bench -p weft-benches`; the test filters are built on first use.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use weft::wasm::abi::types::Action;
use weft_benches::{
    Chain, bare_instance, criterion_output_dir, load_fixture, load_wat, request_header_count,
    request_stream, runtime, start_vm, stream_info,
};

/// The weft binary's allocator (proxy/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Guest functions that make 0, 1 or 100 host calls, and nothing else.
const HOST_CALLS_WAT: &str = r#"
(module
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_context (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "empty"))
  (func (export "time_1")
    (drop (call $now (i32.const 16))))
  (func (export "time_100") (local $i i32)
    (loop $again
      (drop (call $now (i32.const 16)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 100)))))
  (func (export "set_context_1")
    (drop (call $set_context (i32.const 1))))
)
"#;

/// A filter whose `on_request_headers` calls `proxy_get_header_map_pairs` once on the
/// request headers (trapping unless it returns Ok), and one whose `on_request_headers`
/// does nothing (the baseline). The allocator is a bump allocator reset by each callback.
const GET_PAIRS_WAT: &str = r#"
(module
  (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32) (local $ptr i32)
    (local.set $ptr (global.get $bump))
    (global.set $bump
      (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 7))
               (i32.const -8)))
    (local.get $ptr))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $bump (i32.const 1024))
    (if (call $pairs (i32.const 0) (i32.const 0) (i32.const 4)) (then unreachable))
    (if (i32.eqz (i32.load (i32.const 4))) (then unreachable))
    (i32.const 0))
)
"#;

const EMPTY_FILTER_WAT: &str = r#"
(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (i32.const 0))
)
"#;

fn host_call_round_trip(c: &mut Criterion) {
    let runtime = runtime();
    let module = load_wat(&runtime, "host_calls", HOST_CALLS_WAT);
    let (mut store, instance) = bare_instance(&runtime, &module);
    let func = |store: &mut wasmtime::Store<_>, name: &str| {
        instance
            .get_typed_func::<(), ()>(store, name)
            .unwrap_or_else(|e| panic!("export {name}: {e}"))
    };
    let empty = func(&mut store, "empty");
    let time_1 = func(&mut store, "time_1");
    let time_100 = func(&mut store, "time_100");
    let set_context_1 = func(&mut store, "set_context_1");

    let mut group = c.benchmark_group("host_call_round_trip");
    group.bench_function("empty_guest_call", |b| {
        b.iter(|| empty.call(&mut store, ()).expect("call"))
    });
    group.bench_function("get_current_time_nanoseconds/1", |b| {
        b.iter(|| time_1.call(&mut store, ()).expect("call"))
    });
    group.bench_function("get_current_time_nanoseconds/100", |b| {
        b.iter(|| time_100.call(&mut store, ()).expect("call"))
    });
    group.bench_function("set_effective_context/1", |b| {
        b.iter(|| set_context_1.call(&mut store, ()).expect("call"))
    });
    // What proxy_get_current_time_nanoseconds does natively, to separate the clock from
    // the crossing.
    group.bench_function("native_system_time_now", |b| {
        b.iter(|| {
            black_box(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            )
        })
    });
    group.finish();
}

fn header_map_read(c: &mut Criterion) {
    let runtime = runtime();
    let info = stream_info();
    let mut group = c.benchmark_group("header_map_read");

    let cases = [
        (
            "wat_empty_callback",
            load_wat(&runtime, "empty", EMPTY_FILTER_WAT),
        ),
        (
            "wat_get_header_map_pairs",
            load_wat(&runtime, "get_pairs", GET_PAIRS_WAT),
        ),
        ("fixture_headers", load_fixture(&runtime, "headers")),
    ];
    for (name, module) in &cases {
        let mut vm = start_vm(&runtime, module, name);
        let context = vm.create_http_context().expect("create an HTTP context");
        // Sanity check, outside the measurement: the filter ran and continued.
        let mut stream = Some(request_stream(&info));
        let count = request_header_count(&stream);
        let action = vm
            .on_request_headers(context, &mut stream, count, true)
            .expect("on_request_headers");
        assert_eq!(action, Action::Continue);
        if *name == "fixture_headers" {
            let headers = &stream.as_ref().expect("stream").request.headers;
            assert_eq!(headers["x-wasm-path"], "/api/v1/items?x=1");
        }
        group.bench_function(*name, |b| {
            // A fresh request per iteration, built and dropped outside the measurement
            // (`iter_batched_ref`: ~1 ns of harness overhead, against ~30 ns for
            // `iter_batched`, which moves each input in and out).
            b.iter_batched_ref(
                || Some(request_stream(&info)),
                |stream| {
                    vm.on_request_headers(context, stream, count, true)
                        .expect("on_request_headers")
                },
                BatchSize::SmallInput,
            )
        });
        vm.finish_http_context(context, &mut stream)
            .expect("finish the HTTP context");
    }
    group.finish();
}

fn chain(c: &mut Criterion) {
    let runtime = runtime();
    let info = stream_info();
    let mut group = c.benchmark_group("chain");
    for name in ["noop", "add_header"] {
        let module = load_fixture(&runtime, name);
        for len in [1, 4] {
            let mut chain = Chain::new(&runtime, &module, name, len);
            // Sanity check, outside the measurement.
            let mut stream = Some(request_stream(&info));
            chain.run(&mut stream);
            let added = stream
                .as_ref()
                .expect("stream")
                .request
                .headers
                .get_all("x-added")
                .iter()
                .count();
            assert_eq!(added, if name == "add_header" { len } else { 0 });

            group.bench_with_input(BenchmarkId::new(name, len), &len, |b, _| {
                b.iter_batched_ref(
                    || Some(request_stream(&info)),
                    |stream| chain.run(stream),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .output_directory(&criterion_output_dir())
}

criterion_group! {
    name = host_calls;
    config = config();
    targets = host_call_round_trip
}
criterion_group! {
    name = header_reads;
    config = config();
    targets = header_map_read
}
criterion_group! {
    name = chains;
    config = config();
    targets = chain
}
criterion_main!(host_calls, header_reads, chains);
