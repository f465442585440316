//! Packing and unpacking bundle archives (`.tar.gz`).
//!
//! Packing is deterministic (files in the order given, no timestamps, owners or modes from
//! the machine), so the same bundle content always gives the same archive and the same
//! sha256. Unpacking accepts only regular files and directories with relative paths that
//! stay inside the destination, and writes to a temporary directory that is renamed into
//! place when complete, so a reader never sees half a bundle.

use std::io::Read;
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// The most an archive may unpack to (bytes), against decompression bombs.
const MAX_UNPACKED: u64 = 512 << 20;

/// Packs `files` (paths relative to `dir`, with `/`) into a `.tar.gz`.
pub fn pack(dir: &Path, files: &[String]) -> std::io::Result<Vec<u8>> {
    let encoder = GzEncoder::new(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(encoder);
    tar.mode(tar::HeaderMode::Deterministic);
    for name in files {
        let bytes = std::fs::read(dir.join(name))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, bytes.as_slice())?;
    }
    tar.into_inner()?.finish()
}

/// Unpacks a `.tar.gz` into `dest` (which must not exist yet, or is replaced).
pub fn unpack(archive: &[u8], dest: &Path) -> std::io::Result<()> {
    let tmp = dest.with_extension(format!("unpacking-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let result = unpack_into(archive, &tmp);
    if let Err(error) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(error);
    }
    let _ = std::fs::remove_dir_all(dest);
    if let Err(error) = std::fs::rename(&tmp, dest) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process unpacked the same archive first: theirs is as good.
        if !dest.is_dir() {
            return Err(error);
        }
    }
    Ok(())
}

fn unpack_into(archive: &[u8], dir: &Path) -> std::io::Result<()> {
    let mut tar = tar::Archive::new(GzDecoder::new(archive));
    let mut total = 0u64;
    for entry in tar.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        let name = entry.path()?.to_string_lossy().into_owned();
        let target = super::inside(dir, &name).map_err(std::io::Error::other)?;
        match kind {
            tar::EntryType::Directory => std::fs::create_dir_all(&target)?,
            tar::EntryType::Regular => {
                total += entry.header().size()?;
                if total > MAX_UNPACKED {
                    return Err(std::io::Error::other(format!(
                        "it unpacks to more than {} MiB",
                        MAX_UNPACKED >> 20
                    )));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes)?;
                std::fs::write(&target, bytes)?;
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "{name}: entries of type {other:?} are not allowed in a bundle"
                )));
            }
        }
    }
    Ok(())
}
