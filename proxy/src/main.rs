//! The `weft` binary: a thin shell over the library's CLI.

fn main() -> std::process::ExitCode {
    weft::cli::main()
}
