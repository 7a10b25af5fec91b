use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::common::BIN;

/// Every setting of `moongate schema gateway` and every field of `moongate schema api` is in
/// `docs/operations.md`, so the operator guide cannot fall behind the code.
#[test]
fn operator_guide_covers_every_setting() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    for which in ["gateway", "api"] {
        let out = Command::new(BIN).args(["schema", which]).output().unwrap();
        assert!(out.status.success());
        let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut paths = BTreeSet::new();
        collect(&schema, &schema, "", &mut paths);
        assert!(paths.len() > 10, "{paths:?}");
        let missing: Vec<_> =
            paths.iter().filter(|p| !docs.contains(&format!("`{p}`")) && !documented_as_entry(&docs, p)).collect();
        assert!(missing.is_empty(), "settings missing from docs/operations.md ({which}): {missing:?}");
    }
}

/// Hook entry fields are documented in one line under `custom_middleware`.
fn documented_as_entry(docs: &str, path: &str) -> bool {
    path.starts_with("custom_middleware.")
        && path.rsplit('.').next().is_some_and(|leaf| docs.contains(&format!("`{leaf}`")))
}

fn collect(root: &Value, node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    let node = resolve(root, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            let sub = resolve(root, sub);
            let nested = object_of(root, sub);
            match nested {
                Some(inner) if inner.get("properties").is_some() => collect(root, inner, &path, out),
                _ => {
                    out.insert(path);
                }
            }
        }
    }
}

/// The object schema behind a property: itself, a `$ref`, an array's items, or the non-null arm of
/// an `anyOf`.
fn object_of<'a>(root: &'a Value, v: &'a Value) -> Option<&'a Value> {
    let v = resolve(root, v);
    if v.get("properties").is_some() {
        return Some(v);
    }
    if let Some(items) = v.get("items") {
        return object_of(root, items);
    }
    v.get("anyOf").and_then(Value::as_array).and_then(|arms| arms.iter().find_map(|a| object_of(root, a)))
}

fn resolve<'a>(root: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => &root["$defs"][name],
        None => v,
    }
}
