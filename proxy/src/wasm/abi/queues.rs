//! Shared queues: proxy_register_shared_queue, proxy_resolve_shared_queue,
//! proxy_enqueue_shared_queue, proxy_dequeue_shared_queue (see `wasm::queues`).

use bytes::Bytes;
use wasmtime::Caller;

use super::memory::{self, status_code};
use super::types::Status;
use crate::wasm::host::HostFunctions;
use crate::wasm::state::HostState;

pub fn add_to_linker(f: &mut HostFunctions<'_>) {
    f.func(
        "env",
        "proxy_register_shared_queue",
        |mut c: Caller<'_, HostState>, name_ptr: u32, name_len: u32, id_out: u32| {
            status_code((|| {
                let name = memory::read_string(&mut c, name_ptr, name_len)?;
                let state = c.data();
                let id = state
                    .host
                    .queues
                    .register(&state.plugin.vm_id, &name, &state.signals);
                memory::write_u32(&mut c, id_out, id)?;
                Ok(Status::Ok)
            })())
        },
    );
    f.func(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Caller<'_, HostState>,
         vm_ptr: u32,
         vm_len: u32,
         name_ptr: u32,
         name_len: u32,
         id_out: u32| {
            status_code((|| {
                let vm_id = memory::read_string(&mut c, vm_ptr, vm_len)?;
                let name = memory::read_string(&mut c, name_ptr, name_len)?;
                match c.data().host.queues.resolve(&vm_id, &name) {
                    Some(id) => {
                        memory::write_u32(&mut c, id_out, id)?;
                        Ok(Status::Ok)
                    }
                    None => Ok(Status::NotFound),
                }
            })())
        },
    );
    f.func(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: Caller<'_, HostState>, id: u32, ptr: u32, len: u32| {
            status_code((|| {
                let item = memory::read(&mut c, ptr, len)?;
                if c.data().host.queues.enqueue(id, Bytes::from(item)) {
                    Ok(Status::Ok)
                } else {
                    Ok(Status::NotFound)
                }
            })())
        },
    );
    f.func(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: Caller<'_, HostState>, id: u32, ptr_out: u32, size_out: u32| {
            status_code((|| match c.data().host.queues.dequeue(id) {
                None => Ok(Status::NotFound),
                Some(None) => Ok(Status::Empty),
                Some(Some(item)) => {
                    memory::return_bytes(&mut c, &item, ptr_out, size_out)?;
                    Ok(Status::Ok)
                }
            })())
        },
    );
}
