//! The pure cores stay pure: the allocator (and the config crate it builds on) import neither
//! Kubernetes client types nor tokio, so they can be reasoned about and tested as plain values
//! and reused by `kubectl ferrolb simulate`.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_allocator_and_config_import_no_kubernetes_client_and_no_tokio() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/allocator"), &mut files);
    rust_files(&root.join("../config/src"), &mut files);
    assert!(files.len() > 5, "found the sources: {files:?}");
    let forbidden = ["kube::", "use kube", "k8s_openapi", "tokio"];
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
        for (line, word) in code.flat_map(|l| forbidden.iter().map(move |w| (l, w))) {
            assert!(
                !line.contains(word),
                "{} uses {word}: {line}",
                file.display()
            );
        }
    }
}
