//! Every HTTP API route the engine serves is documented in
//! `docs/openapi.yaml`: the route strings in `engine/src/api/http/` are
//! read from the source and each must appear as a path of the document.

#[test]
fn every_api_route_is_documented() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/openapi.yaml")).expect("openapi.yaml");
    let dir = root.join("engine/src/api/http");
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("http dir") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("source");
        for piece in text.split("\"/").skip(1) {
            let Some(end) = piece.find('"') else { continue };
            let path = format!("/{}", &piece[..end]);
            let is_route = ["api/v1/", "healthz", "readyz", "livez", "metrics"]
                .iter()
                .any(|p| path[1..].starts_with(p));
            if is_route && !path.contains(' ') {
                routes.push(path);
            }
        }
    }
    assert!(routes.len() >= 12, "found the routes: {routes:?}");
    let missing: Vec<_> = routes
        .iter()
        .filter(|r| !doc.contains(&format!("\n  {r}:")))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from docs/openapi.yaml: {missing:?}"
    );
}
