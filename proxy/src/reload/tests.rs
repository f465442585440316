use super::*;

fn config(yaml: &str) -> Config {
    config::load_str("test.yaml", yaml).expect("valid config")
}

const BASE: &str = r#"
admin: { address: "127.0.0.1:9901" }
listeners:
  - name: main
    address: "127.0.0.1:8080"
    routes:
      - { name: all, match: { path: { prefix: "/" } }, cluster: up }
clusters:
  - { name: up, endpoints: ["127.0.0.1:9000"] }
"#;

#[test]
fn routes_and_clusters_may_change() {
    let old = config(BASE);
    let new = config(&BASE.replace("127.0.0.1:9000", "127.0.0.1:9001"));
    check_start_only(&old, &new).unwrap();
}

#[test]
fn listener_address_name_and_admin_are_start_only() {
    let old = config(BASE);
    let moved = config(&BASE.replace("127.0.0.1:8080", "127.0.0.1:8081"));
    let errors = check_start_only(&old, &moved).unwrap_err().to_string();
    assert!(
        errors.contains("listeners[0].address: changed from 127.0.0.1:8080 to 127.0.0.1:8081"),
        "{errors}"
    );
    assert!(errors.contains("restart weft"), "{errors}");

    let renamed = config(&BASE.replace("name: main", "name: edge"));
    let errors = check_start_only(&old, &renamed).unwrap_err().to_string();
    assert!(errors.contains("listeners[0].name"), "{errors}");

    let admin = config(&BASE.replace("127.0.0.1:9901", "127.0.0.1:9902"));
    let errors = check_start_only(&old, &admin).unwrap_err().to_string();
    assert!(
        errors.contains("admin: the admin address changed"),
        "{errors}"
    );
}

#[test]
fn files_are_the_config_and_modules_not_builtins() {
    let yaml = BASE.replace(
        "    routes:",
        "    filters:\n      - { name: a, module: a.wasm }\n      - { name: b, module: \"builtin:hello\" }\n      - { name: c, module: a.wasm }\n    routes:",
    );
    let dir = std::env::temp_dir().join(format!("weft-reload-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("weft.yaml");
    std::fs::write(&file, &yaml).unwrap();
    std::fs::write(dir.join("a.wasm"), b"\0asm").unwrap();
    let source = ConfigSource::File(file.clone());
    let loaded = source.load().unwrap();
    assert_eq!(source.files(&loaded), vec![file, dir.join("a.wasm")]);
    assert!(
        ConfigSource::Embedded
            .files(&config::embedded_default())
            .is_empty()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files_include_each_cluster_tls_file_once() {
    let temp = crate::tls::test_pki::TestDir::new("reload-tls");
    crate::tls::test_pki::TestCa::new(&temp).issue(&temp, "web");
    let dir = temp.path();
    let yaml = format!(
        "{BASE}    tls: {{ ca_file: ca.pem, certificate: web.pem, key: web.key }}\n  - name: other\n    endpoints: [\"127.0.0.1:9001\"]\n    tls: {{ ca_file: ca.pem }}\n"
    )
    .replace("  - { name: up, endpoints: [\"127.0.0.1:9000\"] }\n", "  - name: up\n    endpoints: [\"127.0.0.1:9000\"]\n");
    let file = dir.join("weft.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let source = ConfigSource::File(file.clone());
    let loaded = source.load().unwrap();
    assert_eq!(
        source.files(&loaded),
        vec![
            file,
            dir.join("ca.pem"),
            dir.join("web.pem"),
            dir.join("web.key")
        ]
    );
}
