#!/usr/bin/env bash
# Builds the Weft filters to wasm: every crate under filters/*/ and examples/*/ whose
# [lib] has a "cdylib" crate type, for wasm32-unknown-unknown with the workspace's `wasm`
# profile, and copies each module to target/filters/<lib_name>.wasm (only when it
# changed, so the copies' mtimes stay put and a watching weft does not reload for nothing).
#
#   scripts/build-filters.sh                 build all (incremental: quick when nothing changed)
#   scripts/build-filters.sh NAME...         build only these packages (e.g. hello-filter)
#   scripts/build-filters.sh --check         only verify that every expected .wasm exists
#
# One target is enough: weft and Envoy load wasm32-unknown-unknown modules, which are the
# smallest (no WASI imports). Build a wasm32-wasip1 module by hand if you need one:
#   cargo build --profile wasm --target wasm32-wasip1 -p <package>
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target=wasm32-unknown-unknown
out_dir="$repo/target/filters"

usage() {
    echo "usage: $0 [--check] [PACKAGE...]" >&2
    exit 2
}

check_only=0
wanted=()
for arg in "$@"; do
    case "$arg" in
        --check) check_only=1 ;;
        -h | --help)
            sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        -*) usage ;;
        *) wanted+=("$arg") ;;
    esac
done

# "<package> <lib_name>" of a crate whose [lib] builds a cdylib, from its Cargo.toml.
cdylib_of() {
    awk '
        /^\[/ { section = $0 }
        section == "[package]" && /^name *=/ { gsub(/.*= *"|".*/, ""); package = $0 }
        section == "[lib]" && /^name *=/ { gsub(/.*= *"|".*/, ""); lib = $0 }
        section == "[lib]" && /^crate-type *=/ && /"cdylib"/ { cdylib = 1 }
        END {
            if (cdylib && package != "") {
                if (lib == "") { lib = package; gsub(/-/, "_", lib) }
                print package, lib
            }
        }' "$1"
}

is_wanted() {
    local name
    for name in "${wanted[@]}"; do
        [ "$name" = "$1" ] && return 0
    done
    return 1
}

packages=()
libs=()
for manifest in "$repo"/filters/*/Cargo.toml "$repo"/examples/*/Cargo.toml; do
    [ -f "$manifest" ] || continue
    found="$(cdylib_of "$manifest")"
    [ -n "$found" ] || continue
    package="${found% *}"
    lib="${found#* }"
    if [ "${#wanted[@]}" -gt 0 ] && ! is_wanted "$package"; then
        continue
    fi
    packages+=("$package")
    libs+=("$lib")
done

if [ "${#wanted[@]}" -gt 0 ] && [ "${#packages[@]}" -ne "${#wanted[@]}" ]; then
    echo "error: not every package named is a cdylib crate under filters/ or examples/:" \
        "${wanted[*]} (found: ${packages[*]:-none})" >&2
    exit 1
fi
if [ "${#packages[@]}" -eq 0 ]; then
    echo "no filter crates (a [lib] with crate-type \"cdylib\") under filters/ or examples/; nothing to build" >&2
    exit 0
fi

human_size() {
    awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%.1f MiB", b / 1048576;
                           else if (b >= 1024) printf "%.1f KiB", b / 1024;
                           else printf "%d B", b }'
}

list_artifacts() {
    local lib file missing=0
    for lib in "${libs[@]}"; do
        file="$out_dir/$lib.wasm"
        if [ -f "$file" ]; then
            printf '%10s  %s\n' "$(human_size "$(wc -c <"$file")")" "${file#"$repo"/}"
        else
            printf '%10s  %s\n' "MISSING" "${file#"$repo"/}"
            missing=$((missing + 1))
        fi
    done
    return "$missing"
}

if [ "$check_only" -eq 1 ]; then
    if list_artifacts; then
        echo "all ${#libs[@]} filter modules present"
        exit 0
    fi
    echo "error: some filter modules are missing; run scripts/build-filters.sh" >&2
    exit 1
fi

if ! command -v cargo >/dev/null; then
    echo "error: cargo is required to build the filters (https://rustup.rs)" >&2
    exit 1
fi
cd "$repo"

# The standard library for the wasm target, as scripts/build-wasm.sh installs it.
if command -v rustup >/dev/null; then
    if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
        echo "installing Rust target: $target" >&2
        if ! rustup target add "$target"; then
            echo "error: 'rustup target add $target' failed; see scripts/build-wasm.sh for" \
                "the fallbacks without rustup" >&2
            exit 1
        fi
    fi
else
    sysroot="$(rustc --print sysroot 2>/dev/null || true)"
    if [ -z "$sysroot" ] || [ ! -d "$sysroot/lib/rustlib/$target" ]; then
        echo "error: rustup is not installed and rustc (${sysroot:-not found}) has no standard" \
            "library for $target; install rustup (https://rustup.rs) or see" \
            "scripts/build-wasm.sh for Debian's packaged fallback" >&2
        exit 1
    fi
fi

# Every filter crate must be a member of the root workspace (its line in Cargo.toml).
args=()
for package in "${packages[@]}"; do
    args+=(-p "$package")
done
echo "building filters for $target: ${packages[*]}" >&2
cargo build --locked --profile wasm --target "$target" "${args[@]}"

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
mkdir -p "$out_dir"
for lib in "${libs[@]}"; do
    src="$target_dir/$target/wasm/$lib.wasm"
    dst="$out_dir/$lib.wasm"
    if [ ! -f "$src" ]; then
        echo "error: cargo did not produce $src" >&2
        exit 1
    fi
    if ! cmp -s "$src" "$dst"; then
        cp "$src" "$dst.tmp"
        mv -f "$dst.tmp" "$dst"
        echo "updated ${dst#"$repo"/}" >&2
    fi
done

list_artifacts
