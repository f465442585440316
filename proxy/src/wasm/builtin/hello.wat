;; builtin:hello, the filter of weft's embedded default config: a minimal proxy-wasm
;; module (ABI v0.2.1) that adds `x-weft-filter: hello` to every request and response,
;; so `weft run` alone shows a filter chain at work. Written by hand so that the binary
;; needs no wasm toolchain to build; the SDK-built filters live in filters/.
(module
  (import "env" "proxy_add_header_map_value"
    (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x-weft-filter")
  (data (i32.const 32) "hello")
  ;; A bump allocator in the upper half of the page, for values the host returns (this
  ;; filter asks for none); 0 when it runs out.
  (global $next (mut i32) (i32.const 32768))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $next))
    (if (i32.gt_u (i32.add (local.get $at) (local.get $size)) (i32.const 65536))
      (then (return (i32.const 0))))
    (global.set $next (i32.add (local.get $at) (local.get $size)))
    (local.get $at))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  ;; map 0 = request headers, 2 = response headers; returns Continue (0).
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add_header (i32.const 0) (i32.const 16) (i32.const 13) (i32.const 32) (i32.const 5)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $add_header (i32.const 2) (i32.const 16) (i32.const 13) (i32.const 32) (i32.const 5)))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
)
