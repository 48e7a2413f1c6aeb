//! The shape of the runtime, checked: the top-level modules of `src/` form
//! no import cycle bigger than a pair, and no file has more than 600 lines
//! of non-test code. (See the crate docs for the module map.) And the
//! shape of the tests: no test file of the workspace over 800 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to (`lib` for lib.rs).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("non-empty path");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The code of a file before its `#[cfg(test)] mod tests`.
fn non_test_code(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Top-level module → the top-level modules its non-test code names.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = src();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeSet::new();
    for f in &files {
        modules.insert(top_module(&src, f));
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let from = top_module(&src, f);
        let text = std::fs::read_to_string(f).expect("readable source");
        let code = non_test_code(&text);
        let edges = graph.entry(from.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name != from && modules.contains(&name) {
                edges.insert(name);
            }
        }
    }
    graph.remove("lib");
    for edges in graph.values_mut() {
        edges.remove("lib");
    }
    graph
}

/// Strongly connected components (Tarjan's algorithm, recursive: the graph
/// has a few dozen nodes).
fn components(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges: Vec<&'a str> = s
            .graph
            .get(v)
            .map(|e| e.iter().map(String::as_str).collect())
            .unwrap_or_default();
        for w in edges {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn top_level_modules_form_no_cycle_bigger_than_a_pair() {
    let graph = import_graph();
    assert!(graph.len() > 10, "found the modules: {graph:?}");
    let big: Vec<_> = components(&graph)
        .into_iter()
        .filter(|c| c.len() > 2)
        .collect();
    assert!(
        big.is_empty(),
        "import cycles among top-level modules: {big:?}\ngraph: {graph:#?}"
    );
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph.entry(a.into()).or_default().insert(b.into());
        graph.entry(b.into()).or_default();
    }
    let sizes: Vec<usize> = components(&graph).iter().map(|c| c.len()).collect();
    assert!(sizes.contains(&3), "{sizes:?}");
}

#[test]
fn no_file_has_more_than_600_lines_of_non_test_code() {
    let src = src();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let long: Vec<(String, usize)> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("readable source");
            let lines = non_test_code(&text).lines().count();
            (
                f.strip_prefix(&src).unwrap_or(f).display().to_string(),
                lines,
            )
        })
        .filter(|(_, n)| *n > 600)
        .collect();
    assert!(
        long.is_empty(),
        "files over 600 lines of non-test code: {long:?}"
    );
}

/// The `tests/` folders of the workspace's crates (the SDKs under
/// `clients/` excepted: their tests follow their own languages' layouts).
fn test_folders() -> Vec<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the workspace");
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(workspace).expect("the workspace is readable") {
        let dir = entry.expect("dir entry").path();
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        if matches!(name.as_deref(), Some("clients" | "target")) || !dir.is_dir() {
            continue;
        }
        if dir.join("Cargo.toml").is_file() && dir.join("tests").is_dir() {
            folders.push(dir.join("tests"));
        }
    }
    folders.sort();
    folders
}

#[test]
fn no_test_file_has_more_than_800_lines() {
    let folders = test_folders();
    for crate_dir in ["zinx-cluster", "demo", "tests"] {
        assert!(
            folders
                .iter()
                .any(|f| f.ends_with(format!("{crate_dir}/tests"))),
            "{crate_dir}/tests not found among {folders:?}"
        );
    }
    let mut files = Vec::new();
    for folder in &folders {
        rust_files(folder, &mut files);
    }
    assert!(files.len() > 20, "found the test files: {files:?}");
    let long: Vec<(String, usize)> = files
        .iter()
        .map(|f| {
            let lines = std::fs::read_to_string(f)
                .expect("a readable test file")
                .lines()
                .count();
            (f.display().to_string(), lines)
        })
        .filter(|(_, n)| *n > 800)
        .collect();
    assert!(
        long.is_empty(),
        "test files over 800 lines (group them by surface: tests/<name>/main.rs and modules): {long:?}"
    );
}
