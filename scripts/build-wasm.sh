#!/usr/bin/env bash
# Builds the proxy-wasm test filters ("fixtures") in tests/wasm-filters/ for both wasm
# targets and copies the modules to target/wasm-fixtures/<target>/<name>.wasm, where the
# end-to-end tests load them. See tests/wasm-filters/README.md for what each one does.
#
#   scripts/build-wasm.sh            build (incremental: fast when nothing changed)
#   scripts/build-wasm.sh --check    only verify that every expected .wasm exists
#
# The cargo build directory is target/wasm (shared by every run, so builds are cached).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fixtures_dir="$repo/tests/wasm-filters"
out_dir="$repo/target/wasm-fixtures"
targets=(wasm32-unknown-unknown wasm32-wasip1)

usage() {
    echo "usage: $0 [--check]" >&2
    exit 2
}

check_only=0
case "$#:${1:-}" in
    0:) ;;
    1:--check) check_only=1 ;;
    1:-h | 1:--help)
        sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) usage ;;
esac

# The fixture names: every folder of tests/wasm-filters with a Cargo.toml. The cdylib of
# each is named after its folder ([lib] name), so cargo writes <name>.wasm.
fixtures=()
for manifest in "$fixtures_dir"/*/Cargo.toml; do
    [ -f "$manifest" ] || continue
    fixtures+=("$(basename "$(dirname "$manifest")")")
done
if [ "${#fixtures[@]}" -eq 0 ]; then
    echo "error: no fixtures found under $fixtures_dir" >&2
    exit 1
fi

# Fixtures that cannot be built for a target, as "<target>:<name>"; none at present.
skipped=()
is_skipped() {
    local entry
    for entry in ${skipped[@]+"${skipped[@]}"}; do
        [ "$entry" = "$1:$2" ] && return 0
    done
    return 1
}

human_size() {
    awk -v b="$1" 'BEGIN { if (b >= 1048576) printf "%.1f MiB", b / 1048576;
                           else if (b >= 1024) printf "%.1f KiB", b / 1024;
                           else printf "%d B", b }'
}

list_artifacts() {
    local target name file missing=0
    for target in "${targets[@]}"; do
        for name in "${fixtures[@]}"; do
            is_skipped "$target" "$name" && continue
            file="$out_dir/$target/$name.wasm"
            if [ -f "$file" ]; then
                printf '%10s  %s\n' "$(human_size "$(wc -c <"$file")")" "${file#"$repo"/}"
            else
                printf '%10s  %s\n' "MISSING" "${file#"$repo"/}"
                missing=$((missing + 1))
            fi
        done
    done
    return "$missing"
}

if [ "$check_only" -eq 1 ]; then
    if list_artifacts; then
        echo "all $(( ${#fixtures[@]} * ${#targets[@]} - ${#skipped[@]} )) wasm fixtures present"
        exit 0
    fi
    echo "error: some wasm fixtures are missing; run scripts/build-wasm.sh" >&2
    exit 1
fi

if ! command -v cargo >/dev/null; then
    echo "error: cargo is required to build the wasm fixtures (https://rustup.rs)" >&2
    exit 1
fi
# From here on, run where the fixtures' cargo workspace is, so rustup and cargo pick the
# toolchain that will build them.
cd "$fixtures_dir"

debian_hint() {
    cat >&2 <<EOF
The wasm fixtures need the Rust standard library for ${targets[*]}.
With rustup: rustup target add ${targets[*]}
Without rustup, Debian's packaged toolchain is the fallback, with caveats:
  - rustc-web / cargo-web (the newer toolchain Debian 12 ships for browsers) come with
    no wasm32 standard library package, so they cannot build these fixtures;
  - 'apt-get install rustc cargo libstd-rust-dev-wasm32' works only where that rustc is
    1.78 or newer (proxy-wasm 0.2.5 needs >= 1.68, the wasm32-wasip1 name >= 1.78;
    Debian 12's rustc is 1.63); then put that cargo first on PATH.
EOF
}

# Make sure the standard library for both wasm targets is installed.
missing_targets=()
if command -v rustup >/dev/null; then
    installed="$(rustup target list --installed 2>/dev/null || true)"
    for target in "${targets[@]}"; do
        grep -qx "$target" <<<"$installed" || missing_targets+=("$target")
    done
    if [ "${#missing_targets[@]}" -gt 0 ]; then
        echo "installing Rust targets: ${missing_targets[*]}" >&2
        if ! rustup target add "${missing_targets[@]}"; then
            echo "error: 'rustup target add ${missing_targets[*]}' failed." >&2
            debian_hint
            exit 1
        fi
    fi
else
    sysroot="$(rustc --print sysroot 2>/dev/null || true)"
    for target in "${targets[@]}"; do
        [ -n "$sysroot" ] && [ -d "$sysroot/lib/rustlib/$target" ] || missing_targets+=("$target")
    done
    if [ "${#missing_targets[@]}" -gt 0 ]; then
        echo "error: rustup is not installed and rustc (${sysroot:-not found}) has no" \
            "standard library for ${missing_targets[*]}." >&2
        debian_hint
        exit 1
    fi
fi

export CARGO_TARGET_DIR="$repo/target/wasm"

for target in "${targets[@]}"; do
    excludes=()
    for name in "${fixtures[@]}"; do
        is_skipped "$target" "$name" && excludes+=(--exclude "fixture-$name")
    done
    echo "building wasm fixtures for $target" >&2
    cargo build --locked --release --workspace --target "$target" ${excludes[@]+"${excludes[@]}"}
done

# Copy only what changed, so an unchanged build leaves the copies (and their mtimes) alone.
for target in "${targets[@]}"; do
    mkdir -p "$out_dir/$target"
    for name in "${fixtures[@]}"; do
        is_skipped "$target" "$name" && continue
        src="$CARGO_TARGET_DIR/$target/release/$name.wasm"
        dst="$out_dir/$target/$name.wasm"
        if [ ! -f "$src" ]; then
            echo "error: cargo did not produce $src" >&2
            exit 1
        fi
        if ! cmp -s "$src" "$dst"; then
            cp "$src" "$dst.tmp"
            mv -f "$dst.tmp" "$dst"
        fi
    done
done

list_artifacts
