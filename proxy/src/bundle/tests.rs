use super::*;

/// A bundle source directory with `weft.yaml` naming `filters/a.wasm` (config `cfg`).
fn source_dir(name: &str, cfg: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-bundle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("filters")).unwrap();
    std::fs::write(dir.join("filters/a.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(
        dir.join(CONFIG_FILE),
        format!(
            "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    filters:\n      - name: a\n        module: filters/a.wasm\n        config: {cfg}\n    routes:\n      - direct_response: {{ status: 200, body: ok }}\n"
        ),
    )
    .unwrap();
    dir
}

fn no_check(config: Config) -> Result<Config, ConfigErrors> {
    Ok(config)
}

#[test]
fn build_then_open_pins_every_module_and_is_deterministic() {
    let dir = source_dir("roundtrip", "{ greeting: hi }");
    let out = dir.with_extension("tar.gz");
    let built = build(&dir, &out, no_check).unwrap();
    let sha = sha256_hex(b"\0asm\x01\0\0\0");
    assert_eq!(built.manifest.modules["filters/a.wasm"].sha256, sha);
    // The same content packs to the same archive.
    let again = build(&dir, &out, no_check).unwrap();
    assert_eq!(built.archive_sha256, again.archive_sha256);

    let unpack = dir.with_extension("unpacked");
    let opened = open(&out, &unpack).unwrap();
    assert_eq!(
        opened.archive_sha256.as_deref(),
        Some(built.archive_sha256.as_str())
    );
    assert!(opened.root.starts_with(&unpack));
    let config = load_config(&opened, "b.tar.gz").unwrap();
    let spec = &config.listeners[0].filters[0];
    assert_eq!(spec.sha256.as_deref(), Some(sha.as_str()));
    assert!(spec.module.starts_with(&opened.root));
    for p in [&dir, &unpack] {
        let _ = std::fs::remove_dir_all(p);
    }
    let _ = std::fs::remove_file(&out);
}

#[test]
fn a_module_that_does_not_match_the_manifest_is_refused() {
    let dir = source_dir("tampered", "{}");
    let out = dir.with_extension("tar.gz");
    build(&dir, &out, no_check).unwrap();
    std::fs::write(dir.join("filters/a.wasm"), b"\0asm\x01\0\0\0\0").unwrap();
    let err = open(&dir, &dir).unwrap_err().to_string();
    assert!(
        err.contains("manifest.json: module filters/a.wasm has sha256")
            && err.contains("but the manifest says"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&out);
}

#[test]
fn modules_outside_the_bundle_or_unlisted_are_refused() {
    let dir = source_dir("outside", "{}");
    let outside = dir.with_extension("wasm");
    std::fs::write(&outside, b"\0asm\x01\0\0\0").unwrap();
    let yaml = std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap();
    std::fs::write(
        dir.join(CONFIG_FILE),
        yaml.replace("filters/a.wasm", &outside.display().to_string()),
    )
    .unwrap();
    let err = build(&dir, &dir.with_extension("tar.gz"), no_check)
        .unwrap_err()
        .to_string();
    assert!(err.contains("listeners[0].filters[0].module"), "{err}");
    assert!(
        err.contains("a bundle's modules must be inside it"),
        "{err}"
    );

    // A directory bundle whose config names a module the manifest does not list.
    std::fs::write(dir.join(CONFIG_FILE), &yaml).unwrap();
    Manifest::default().write(&dir.join(MANIFEST_FILE)).unwrap();
    let opened = open(&dir, &dir).unwrap();
    let err = load_config(&opened, "dir").unwrap_err().to_string();
    assert!(
        err.contains("module filters/a.wasm is not listed in manifest.json"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&outside);
}

#[test]
fn filter_configs_are_checked_against_the_module_schema() {
    let dir = source_dir("schema", "{ greeting: 7 }");
    std::fs::write(
        dir.join("filters/a.schema.json"),
        r#"{"type":"object","properties":{"greeting":{"type":"string"}},"required":["greeting"],"additionalProperties":false}"#,
    )
    .unwrap();
    let err = build(&dir, &dir.with_extension("tar.gz"), no_check)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("listeners[0].filters[0].config: at /greeting: 7 is not of type \"string\""),
        "{err}"
    );
    assert!(err.contains("(schema filters/a.schema.json)"), "{err}");

    let yaml = std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap();
    std::fs::write(
        dir.join(CONFIG_FILE),
        yaml.replace("greeting: 7", "greeting: hello"),
    )
    .unwrap();
    let built = build(&dir, &dir.with_extension("tar.gz"), no_check).unwrap();
    assert_eq!(
        built.manifest.modules["filters/a.wasm"].schema.as_deref(),
        Some("filters/a.schema.json")
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("tar.gz"));
}

#[test]
fn archives_with_paths_leaving_the_bundle_are_refused() {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..9].copy_from_slice(b"../escape");
    header.set_size(2);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut raw = Vec::new();
    raw.extend_from_slice(header.as_bytes());
    raw.extend_from_slice(b"hi");
    raw.resize(512 * 2, 0);
    raw.resize(raw.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let archive = gz.finish().unwrap();
    let dest = std::env::temp_dir().join(format!("weft-bundle-escape-{}", std::process::id()));
    let err = archive::unpack(&archive, &dest.join("x"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a relative path inside the bundle"),
        "{err}"
    );
    assert!(!dest.join("escape").exists());
    let _ = std::fs::remove_dir_all(&dest);
}
