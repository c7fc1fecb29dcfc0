//! The engine's modules form layers that import only downwards
//! (ARCHITECTURE.md): this reads every module's source and fails on a
//! cycle, naming it. The application layer is `app.rs`, its submodules
//! (`app/*.rs`: more `impl Roster` blocks, such as tokens, health and
//! notifications; not scanned as layers of their own) and the top-level
//! modules that extend `Roster` (queries, proposals): all sit above
//! everything else.

use std::collections::{BTreeMap, BTreeSet};

/// Module → the modules of this crate its code (not its comments or unit
/// tests) names through `crate::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            sources.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (name, text) in &sources {
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut deps = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let module: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if modules.contains(&module) && &module != name {
                deps.insert(module);
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_module_of_the_engine_imports_another_in_a_circle() {
    let graph = imports();
    assert!(graph.contains_key("app") && graph.contains_key("engine"));
    // Whatever extends the application layer, nothing below it imports.
    for (module, deps) in &graph {
        for dep in deps {
            if extends_the_application_layer(dep) {
                assert!(
                    module == "lib"
                        || module == "service"
                        || module == "inbound"
                        || extends_the_application_layer(module),
                    "{module} imports {dep}, which extends the application layer it sits below"
                );
            }
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "engine modules import each other in a circle: {}",
            cycle.join(" → ")
        );
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), ["a".to_string()].into());
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
}

/// Modules that add methods to `Roster` (`impl Roster`, e.g. the shared
/// queries and the API tokens): part of the application layer, on top.
fn extends_the_application_layer(module: &str) -> bool {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(format!("{module}.rs"));
    std::fs::read_to_string(path).is_ok_and(|t| t.contains("\nimpl Roster {"))
}

#[test]
fn the_application_layer_sits_on_top() {
    let graph = imports();
    for (module, deps) in &graph {
        if module != "service"
            && module != "inbound"
            && module != "lib"
            && !extends_the_application_layer(module)
        {
            assert!(
                !deps.contains("app"),
                "{module} imports the application layer it sits below"
            );
        }
    }
}
