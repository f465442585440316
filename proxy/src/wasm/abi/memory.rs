//! Guest memory access for every host function, in one place: reading the guest's
//! arguments, writing results through out-pointers, and returning data in memory the guest
//! allocates itself (`proxy_on_memory_allocate`, or `malloc`), which the SDK then owns.

use std::sync::Arc;

use wasmtime::{Caller, Extern, Memory, TypedFunc};

use super::types::Status;
use crate::wasm::state::HostState;

/// Result of a host function body: a status for the guest, or a trap.
pub type HostResult = Result<Status, Status>;

/// The `i32` a host function returns.
pub fn status_code(result: HostResult) -> i32 {
    match result {
        Ok(status) | Err(status) => status as i32,
    }
}

fn memory(caller: &mut Caller<'_, HostState>) -> Result<Memory, Status> {
    if let Some(memory) = caller.data().memory {
        return Ok(memory);
    }
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(Status::InvalidMemoryAccess),
    }
}

/// Copies `len` bytes at `ptr` out of the guest.
pub fn read(caller: &mut Caller<'_, HostState>, ptr: u32, len: u32) -> Result<Vec<u8>, Status> {
    let memory = memory(caller)?;
    let data = memory.data(&caller);
    let start = ptr as usize;
    let end = start
        .checked_add(len as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    data.get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

/// `len` bytes at `ptr` of guest memory `data`.
pub fn slice(data: &[u8], ptr: u32, len: u32) -> Result<&[u8], Status> {
    let start = ptr as usize;
    let end = start
        .checked_add(len as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    data.get(start..end).ok_or(Status::InvalidMemoryAccess)
}

/// Runs `f` on the guest's memory in place (arguments are read with [`slice`], no copy),
/// with the host state beside it.
pub fn with_memory<R>(
    caller: &mut Caller<'_, HostState>,
    f: impl FnOnce(&[u8], &mut HostState) -> R,
) -> Result<R, Status> {
    let memory = memory(caller)?;
    let (data, state) = memory.data_and_store_mut(caller);
    Ok(f(data, state))
}

/// Runs `f` on the `len` bytes at `ptr` in place (no copy), with the host state beside them.
pub fn with_bytes<R>(
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    len: u32,
    f: impl FnOnce(&[u8], &mut HostState) -> R,
) -> Result<R, Status> {
    with_memory(caller, |data, state| Ok(f(slice(data, ptr, len)?, state)))?
}

/// Returns a value built from the argument at `ptr`/`len`: `build` reads the argument in
/// place and appends the value to the store's scratch buffer (reused, so no allocation
/// once it has grown), answering whether there is one; the value then goes to the guest
/// through `ptr_out`/`size_out`, or the call answers NOT_FOUND.
pub fn return_built(
    caller: &mut Caller<'_, HostState>,
    (ptr, len): (u32, u32),
    (ptr_out, size_out): (u32, u32),
    build: impl FnOnce(&[u8], &mut HostState, &mut Vec<u8>) -> Result<bool, Status>,
) -> HostResult {
    let (found, value) = with_bytes(caller, ptr, len, |arg, state| {
        let mut value = std::mem::take(&mut state.scratch);
        value.clear();
        (build(arg, state, &mut value), value)
    })?;
    let result = match found {
        Ok(true) => return_bytes(caller, &value, ptr_out, size_out).map(|()| Status::Ok),
        Ok(false) => Err(Status::NotFound),
        Err(status) => Err(status),
    };
    caller.data_mut().scratch = value;
    result
}

/// Reads a UTF-8 string argument.
pub fn read_string(
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    len: u32,
) -> Result<String, Status> {
    String::from_utf8(read(caller, ptr, len)?).map_err(|_| Status::BadArgument)
}

/// Writes little-endian bytes at `ptr`.
pub fn write(caller: &mut Caller<'_, HostState>, ptr: u32, bytes: &[u8]) -> Result<(), Status> {
    let memory = memory(caller)?;
    memory
        .write(caller, ptr as usize, bytes)
        .map_err(|_| Status::InvalidMemoryAccess)
}

pub fn write_u32(caller: &mut Caller<'_, HostState>, ptr: u32, value: u32) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

pub fn write_u64(caller: &mut Caller<'_, HostState>, ptr: u32, value: u64) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Allocates `bytes.len()` in the guest, copies `bytes` there, and stores the pointer and
/// size through `ptr_out` and `size_out`.
pub fn return_bytes(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ptr_out: u32,
    size_out: u32,
) -> Result<(), Status> {
    // Allocated even when empty: the SDK reads a null pointer as "no value", so an empty
    // header value or property must still get a (zero-sized) allocation, as Envoy does.
    let alloc = allocator(caller)?;
    let ptr = alloc
        .call(&mut *caller, bytes.len() as u32)
        .map_err(|_| Status::InternalFailure)?;
    if ptr == 0 && !bytes.is_empty() {
        return Err(Status::InternalFailure);
    }
    if !bytes.is_empty() {
        write(caller, ptr, bytes)?;
    }
    write_u32(caller, ptr_out, ptr)?;
    write_u32(caller, size_out, bytes.len() as u32)
}

fn allocator(caller: &mut Caller<'_, HostState>) -> Result<Arc<TypedFunc<u32, u32>>, Status> {
    if let Some(alloc) = caller.data().allocator.clone() {
        return Ok(alloc);
    }
    for name in ["proxy_on_memory_allocate", "malloc"] {
        if let Some(Extern::Func(f)) = caller.get_export(name) {
            if let Ok(typed) = f.typed::<u32, u32>(&*caller) {
                return Ok(Arc::new(typed));
            }
        }
    }
    Err(Status::InternalFailure)
}
