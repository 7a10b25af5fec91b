use std::process::Command;

use crate::common::BIN;

fn write_config(dir: &std::path::Path, apis: &[(&str, &str)]) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("apis")).unwrap();
    let gateway = dir.join("gateway.yaml");
    std::fs::write(&gateway, "listen: \"127.0.0.1:0\"\napis_dir: apis\nscripts_dir: scripts\n").unwrap();
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    for (file, text) in apis {
        std::fs::write(dir.join("apis").join(file), text).unwrap();
    }
    gateway
}

const GOOD: &str = "api_id: good\nproxy:\n  listen_path: /good/\n  target_url: \"http://127.0.0.1:9\"\n";

#[test]
fn valid_configuration_passes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[("good.yaml", GOOD)]);
    let out = Command::new(BIN).args(["validate", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (1 APIs)"));
}

#[test]
fn every_error_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let broken_yaml =
        "api_id: broken\nproxy:\n  listen_path: /b/\n  target_url: \"http://x\n  strip_listen_path: true\n";
    let misspelt =
        "api_id: typo\nproxy:\n  listen_path: /t/\n  target_url: \"http://127.0.0.1:9\"\n  strip_listen_pth: true\n";
    let bad_url = "api_id: url\nproxy:\n  listen_path: /u/\n  target_url: \"ftp://x\"\n";
    let dup = "api_id: good\nproxy:\n  listen_path: /other/\n  target_url: \"http://127.0.0.1:9\"\n";
    let config = write_config(
        dir.path(),
        &[
            ("a-good.yaml", GOOD),
            ("broken.yaml", broken_yaml),
            ("misspelt.yaml", misspelt),
            ("url.yaml", bad_url),
            ("z-dup.yaml", dup),
        ],
    );
    let out = Command::new(BIN).args(["validate", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "one line per problem:\n{stderr}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("broken.yaml:6:1: found unexpected end of stream, while scanning a quoted scalar")),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l.contains("misspelt.yaml:5:3:") && l.contains("unknown field `strip_listen_pth`")),
        "{stderr}"
    );
    assert!(lines.iter().any(|l| l.contains("url.yaml:4:3:") && l.contains("only http://")), "{stderr}");
    assert!(lines.iter().any(|l| l.contains("z-dup.yaml:1:1: duplicate api_id `good`")), "{stderr}");

    // `run` refuses the same configuration with the same messages and starts nothing.
    let out = Command::new(BIN).args(["run", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("misspelt.yaml:5:3"));
}

#[test]
fn broken_gateway_yaml_and_env_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[("good.yaml", GOOD)]);
    std::fs::write(&config, "listen: \"127.0.0.1:0\"\napis_dir: apis\nstorage:\n  backend: mongo\n").unwrap();
    let out = Command::new(BIN).args(["validate", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gateway.yaml:4:12: storage.backend: unknown variant `mongo`")
            || stderr.contains("gateway.yaml:4:"),
        "{stderr}"
    );

    std::fs::write(&config, "listen: \"127.0.0.1:0\"\napis_dir: apis\n").unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&config)
        .env("MOONGATE_STORAGE_BACKEND", "redis")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "redis without a URL");
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs storage.redis_url"));
}

#[test]
fn broken_scripts_are_reported_with_script_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scripts/nested")).unwrap();
    std::fs::write(dir.path().join("scripts/nested/syntax.lua"), "x = 1\n\nlocal function f(\n  return 2\nend\n")
        .unwrap();
    std::fs::write(dir.path().join("scripts/missing.lua"), "local unused = 1\n").unwrap();
    std::fs::write(dir.path().join("scripts/never.lua"), "never = TykJS.TykMiddleware.NewMiddleware({})\n").unwrap();
    std::fs::write(dir.path().join("scripts/throws.lua"), "local a = 1\nerror('at load')\n").unwrap();
    let hooks = |name: &str, file: &str| {
        format!(
            "api_id: {name}\nproxy:\n  listen_path: /{name}/\n  target_url: \"http://127.0.0.1:9\"\ncustom_middleware:\n  pre:\n    - {{ name: {name}, path: {file} }}\n"
        )
    };
    let config = write_config(
        dir.path(),
        &[
            ("a.yaml", &hooks("syntax", "nested/syntax.lua")),
            ("b.yaml", &hooks("missing", "missing.lua")),
            ("c.yaml", &hooks("never", "never.lua")),
            ("d.yaml", &hooks("throws", "throws.lua")),
            ("e.yaml", &hooks("absent", "absent.lua")),
        ],
    );
    let out = Command::new(BIN).args(["validate", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A missing file is a YAML-level error (the API file names it), found before scripts load.
    assert!(stderr.contains("e.yaml:7:") && stderr.contains("absent.lua") && stderr.contains("not found"), "{stderr}");

    std::fs::remove_file(dir.path().join("apis/e.yaml")).unwrap();
    let out = Command::new(BIN).args(["validate", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nested/syntax.lua:4: ") && stderr.contains("near 'return'"), "{stderr}");
    assert!(stderr.contains("missing.lua: `missing` is not defined"), "{stderr}");
    assert!(stderr.contains("never.lua: `never` never called NewProcessRequest"), "{stderr}");
    assert!(stderr.contains("throws.lua:2: at load"), "{stderr}");
}

/// The example configuration that `make run` uses, with its scripts, is valid.
#[test]
fn shipped_example_is_valid() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/gateway.yaml");
    let out = Command::new(BIN).args(["validate", "--config"]).arg(&config).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
