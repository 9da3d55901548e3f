//! The shape of the code, checked: no module of the redirector imports one
//! that imports it back (directly or round a longer loop), and no source
//! file of the product crates (tests aside) is over 400 lines.
//!
//! Edges come from `use` declarations and inline `crate::`/`super::` paths,
//! resolved to the deepest module they name; `mod x;` declarations are not
//! edges, so a parent and its child are a cycle only if each uses the
//! other. Test modules are left out.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// `a/b.rs` and `a/b/mod.rs` are `a::b`; `lib.rs` is the root ("").
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Code without line comments and without an inline `mod tests { .. }`.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a `use` tree names: `a::{b, c::{d, e}}` gives `a::b`,
/// `a::c::d`, `a::c::e`.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim_end_matches("::").trim();
        let inner = &tree[open + 1..tree.rfind('}').unwrap()];
        let prefix = join(prefix, head);
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], &prefix, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &prefix, out);
    } else if !tree.is_empty() {
        let name = tree.split(" as ").next().unwrap().trim();
        out.push(join(prefix, name));
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}::{b}"),
    }
}

/// Paths this module refers to by `crate::`, `super::` or `self::`.
fn referenced_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(end) = rest.find(';') {
            expand(&rest[..end], "", &mut out);
            rest = &rest[end..];
        }
    }
    // Child modules named inline (`file::parse`), checked in `resolve`.
    for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
        let first = word.split("::").next().unwrap_or("");
        if word.contains("::") && !matches!(first, "" | "crate" | "super" | "self") {
            out.push(word.trim_end_matches(':').to_owned());
        }
    }
    for anchor in ["crate::", "super::"] {
        let mut at = 0;
        while let Some(i) = code[at..].find(anchor) {
            let start = at + i;
            let end = code[start..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| start + e);
            let path = code[start..end].trim_end_matches(':');
            // `crate::{..}` and `super::{..}` trees come from `use` above.
            if path.contains("::") {
                out.push(path.to_owned());
            }
            at = end;
        }
    }
    out
}

/// The deepest known module `path` names, seen from module `from`.
fn resolve(from: &[String], path: &str, modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut segments = path.split("::").filter(|s| !s.is_empty());
    let first = segments.next()?;
    let mut base: Vec<String> = match first {
        "crate" => Vec::new(),
        "self" => from.to_vec(),
        "super" => {
            let mut b = from.to_vec();
            b.pop();
            b
        }
        // A child module named without `self::`.
        child => {
            let mut b = from.to_vec();
            b.push(child.to_owned());
            if !modules.contains(&b) {
                return None;
            }
            b
        }
    };
    let rest: Vec<&str> = segments.collect();
    let mut supers = rest.iter().take_while(|s| **s == "super").count();
    while supers > 0 {
        base.pop();
        supers -= 1;
    }
    let mut best = base.clone();
    for s in rest.iter().skip_while(|s| **s == "super") {
        base.push((*s).to_owned());
        if modules.contains(&base) {
            best = base.clone();
        } else {
            break;
        }
    }
    Some(best)
}

fn find_cycle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle: Vec<String> = stack[i..].iter().map(|m| name(m)).collect();
            cycle.push(name(node));
            return Some(cycle);
        }
        if !done.insert(node.clone()) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !is_test_file(f) && !f.ends_with("main.rs"));
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        let text = code(&std::fs::read_to_string(file).unwrap());
        let edges = graph.entry(from.clone()).or_default();
        for path in referenced_paths(&text) {
            if let Some(to) = resolve(&from, &path, &modules)
                && to != from
                && !to.is_empty()
            {
                edges.insert(to);
            }
        }
    }
    assert!(graph.len() > 20, "only {} modules found", graph.len());

    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checker_sees_a_cycle() {
    let m = |s: &str| s.split("::").map(str::to_owned).collect::<Vec<_>>();
    let graph = BTreeMap::from([
        (m("a"), BTreeSet::from([m("b")])),
        (m("b"), BTreeSet::from([m("c")])),
        (m("c"), BTreeSet::from([m("a")])),
    ]);
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let mut paths = Vec::new();
    expand("super::{a::{b, c}, d as e}", "", &mut paths);
    assert_eq!(paths, ["super::a::b", "super::a::c", "super::d"]);
    let modules = BTreeSet::from([m("serve"), m("serve::conn"), m("config")]);
    assert_eq!(
        resolve(&m("serve::conn"), "super::State", &modules),
        Some(m("serve"))
    );
    assert_eq!(
        resolve(&m("serve"), "crate::config::Config", &modules),
        Some(m("config"))
    );
}

#[test]
fn product_source_files_fit_in_one_sitting() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in ["redirector", "steer-user", "steer-ebpf", "xtask"] {
        rust_files(&root.join(krate).join("src"), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter(|f| !is_test_file(f))
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > 400).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "over 400 lines: {long:?}");
}
