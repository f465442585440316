//! The `weft` binary: a thin shell over the library's CLI.

/// mimalloc instead of the system allocator: a proxy allocates and frees small buffers
/// on every request, where glibc's malloc showed up as about a tenth of the CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    weft::cli::main()
}
