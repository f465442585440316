//! The WASI preview1 subset (`wasi_snapshot_preview1`) that `wasm32-wasip1` filters
//! import: fd_write on stdout/stderr goes to the log, clocks, random bytes, an empty
//! environment and argument list, proc_exit (ends the call as a trap), sched_yield. The
//! rest of preview1 is defined with its exact signature and answers ENOSYS (or EBADF for
//! the preopened-directory probe), so any module links but gets no file or socket access.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::Caller;

use super::memory;
use crate::wasm::host::HostFunctions;
use crate::wasm::state::HostState;

const WASI: &str = "wasi_snapshot_preview1";
const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ENOSYS: i32 = 52;

fn errno(result: Result<(), super::types::Status>) -> i32 {
    if result.is_ok() { SUCCESS } else { EFAULT }
}

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        WASI,
        "fd_write",
        |mut c: Caller<'_, HostState>,
         fd: i32,
         iovs: u32,
         iovs_len: u32,
         written_out: u32|
         -> i32 {
            if fd != 1 && fd != 2 {
                return EBADF;
            }
            let mut bytes = Vec::new();
            for i in 0..iovs_len {
                let Ok(iov) = memory::read(&mut c, iovs.wrapping_add(i * 8), 8) else {
                    return EFAULT;
                };
                let ptr = u32::from_le_bytes(iov[0..4].try_into().unwrap_or_default());
                let len = u32::from_le_bytes(iov[4..8].try_into().unwrap_or_default());
                match memory::read(&mut c, ptr, len) {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(_) => return EFAULT,
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let level = if fd == 1 {
                tracing::Level::INFO
            } else {
                tracing::Level::WARN
            };
            for line in text.lines().filter(|l| !l.is_empty()) {
                super::logging::log(&c.data().plugin.name, level, line);
            }
            errno(memory::write_u32(&mut c, written_out, bytes.len() as u32))
        },
    );
    f.func(
        WASI,
        "clock_time_get",
        |mut c: Caller<'_, HostState>, id: i32, _precision: i64, time_out: u32| -> i32 {
            let nanos = match id {
                0 => SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
                1..=3 => monotonic_nanos(),
                _ => return EINVAL,
            };
            errno(memory::write_u64(&mut c, time_out, nanos))
        },
    );
    f.func(
        WASI,
        "clock_res_get",
        |mut c: Caller<'_, HostState>, id: i32, res_out: u32| -> i32 {
            if !(0..=3).contains(&id) {
                return EINVAL;
            }
            errno(memory::write_u64(&mut c, res_out, 1_000))
        },
    );
    f.func(
        WASI,
        "random_get",
        |mut c: Caller<'_, HostState>, buf: u32, len: u32| -> i32 {
            let mut bytes = vec![0u8; len as usize];
            if getrandom::fill(&mut bytes).is_err() {
                return ENOSYS;
            }
            errno(memory::write(&mut c, buf, &bytes))
        },
    );
    // No environment variables and no arguments.
    for name in ["environ_sizes_get", "args_sizes_get"] {
        f.func(
            WASI,
            name,
            |mut c: Caller<'_, HostState>, count_out: u32, size_out: u32| -> i32 {
                errno(
                    memory::write_u32(&mut c, count_out, 0)
                        .and_then(|()| memory::write_u32(&mut c, size_out, 0)),
                )
            },
        );
    }
    for name in ["environ_get", "args_get"] {
        f.func(
            WASI,
            name,
            |_c: Caller<'_, HostState>, _ptrs: u32, _buf: u32| -> i32 { SUCCESS },
        );
    }
    f.func(
        WASI,
        "proc_exit",
        |c: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "plugin {} called proc_exit({code})",
                c.data().plugin.name
            )))
        },
    );
    f.func(WASI, "sched_yield", |_c: Caller<'_, HostState>| -> i32 {
        SUCCESS
    });
    // No preopened directories: the probe that std runs at start-up ends at EBADF.
    f.func(
        WASI,
        "fd_prestat_get",
        |_c: Caller<'_, HostState>, _fd: i32, _out: u32| -> i32 { EBADF },
    );
    f.func(
        WASI,
        "fd_prestat_dir_name",
        |_c: Caller<'_, HostState>, _fd: i32, _p: u32, _l: u32| -> i32 { EBADF },
    );
    add_unsupported(f);
}

fn monotonic_nanos() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Every other preview1 function, answering ENOSYS.
fn add_unsupported(f: &mut HostFunctions<'_>) {
    type C<'a> = Caller<'a, HostState>;
    f.func(
        WASI,
        "fd_advise",
        |_: C<'_>, _: i32, _: i64, _: i64, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "fd_allocate",
        |_: C<'_>, _: i32, _: i64, _: i64| -> i32 { ENOSYS },
    );
    f.func(WASI, "fd_close", |_: C<'_>, _: i32| -> i32 { ENOSYS });
    f.func(WASI, "fd_datasync", |_: C<'_>, _: i32| -> i32 { ENOSYS });
    f.func(WASI, "fd_fdstat_get", |_: C<'_>, _: i32, _: i32| -> i32 {
        ENOSYS
    });
    f.func(
        WASI,
        "fd_fdstat_set_flags",
        |_: C<'_>, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "fd_fdstat_set_rights",
        |_: C<'_>, _: i32, _: i64, _: i64| -> i32 { ENOSYS },
    );
    f.func(WASI, "fd_filestat_get", |_: C<'_>, _: i32, _: i32| -> i32 {
        ENOSYS
    });
    f.func(
        WASI,
        "fd_filestat_set_size",
        |_: C<'_>, _: i32, _: i64| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "fd_filestat_set_times",
        |_: C<'_>, _: i32, _: i64, _: i64, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "fd_pread",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i64, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "fd_pwrite",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i64, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "fd_read",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "fd_readdir",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i64, _: i32| -> i32 { ENOSYS },
    );
    f.func(WASI, "fd_renumber", |_: C<'_>, _: i32, _: i32| -> i32 {
        ENOSYS
    });
    f.func(
        WASI,
        "fd_seek",
        |_: C<'_>, _: i32, _: i64, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(WASI, "fd_sync", |_: C<'_>, _: i32| -> i32 { ENOSYS });
    f.func(WASI, "fd_tell", |_: C<'_>, _: i32, _: i32| -> i32 {
        ENOSYS
    });
    f.func(
        WASI,
        "path_create_directory",
        |_: C<'_>, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "path_filestat_get",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "path_filestat_set_times",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "path_link",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "path_open",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i64, _: i64, _: i32, _: i32| -> i32 {
            ENOSYS
        },
    );
    f.func(
        WASI,
        "path_readlink",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "path_remove_directory",
        |_: C<'_>, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "path_rename",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "path_symlink",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "path_unlink_file",
        |_: C<'_>, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "poll_oneoff",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(WASI, "proc_raise", |_: C<'_>, _: i32| -> i32 { ENOSYS });
    f.func(
        WASI,
        "sock_accept",
        |_: C<'_>, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "sock_recv",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(
        WASI,
        "sock_send",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 { ENOSYS },
    );
    f.func(WASI, "sock_shutdown", |_: C<'_>, _: i32, _: i32| -> i32 {
        ENOSYS
    });
}
