//! The CRD YAML committed under `manifests/crds/`, and the reference in `docs/reference.md`, are
//! exactly what the types generate.

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn committed_crd_yaml_matches_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    let mut expected_files = BTreeSet::new();
    for crd in ferrolb_api::all_crds() {
        let name = crd.metadata.name.clone().expect("CRDs have names");
        let file = format!("{name}.yaml");
        let want = ferrolb_api::render_crd_yaml(&crd).expect("renders");
        let have = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        assert!(
            have == want,
            "manifests/crds/{file} is out of date: run `cargo run -p ferrolb-api --bin ferrolb-crdgen` and commit"
        );
        expected_files.insert(file);
    }
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap_or_default();
    assert!(
        kustomization == ferrolb_api::render_kustomization(),
        "manifests/crds/kustomization.yaml is out of date: run `cargo run -p ferrolb-api --bin ferrolb-crdgen` and commit"
    );
    expected_files.insert("kustomization.yaml".to_owned());
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("manifests/crds exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    assert_eq!(
        present, expected_files,
        "manifests/crds holds a CRD no type generates"
    );
}

#[test]
fn committed_reference_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reference.md");
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == ferrolb_api::render_reference(),
        "docs/reference.md is out of date: run `cargo run -p ferrolb-api --bin ferrolb-crdgen` and commit"
    );
}

#[test]
fn every_schema_property_has_a_description_for_kubectl_explain() {
    fn walk(path: &str, v: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, child) in props {
                let p = format!("{path}.{k}");
                // apiVersion/kind/metadata come from Kubernetes itself.
                let builtin =
                    path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
                if !builtin && child.get("description").is_none() {
                    missing.push(p.clone());
                }
                walk(&p, child, missing);
            }
        }
        if let Some(items) = v.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let mut missing = Vec::new();
    for crd in ferrolb_api::all_crds() {
        let kind = crd.spec.names.kind.clone();
        for version in &crd.spec.versions {
            let schema = serde_json::to_value(&version.schema).expect("serializes");
            walk("", &schema["openAPIV3Schema"], &mut missing);
            missing
                .iter_mut()
                .filter(|m| m.starts_with('.'))
                .for_each(|m| *m = format!("{kind}{m}"));
        }
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}
