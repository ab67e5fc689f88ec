//! The module layering of DESIGN.md §6, checked on the source: every
//! `crate::` path between top-level modules must be an allowed edge, and the
//! graph has no cycle. A failure names the file and line of the offending
//! path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may use of ours. Lower layers first; a new
/// module must be placed here. The rules of DESIGN.md §6 are checked on this
/// table too (`rules_of_design_hold_on_the_table`), so widening it cannot
/// quietly break them.
const ALLOWED: &[(&str, &[&str])] = &[
    // Leaves: nothing of ours, or only other leaves.
    ("protocol", &[]),
    ("body", &[]),
    ("sys", &[]),
    ("cli", &[]),
    ("cli_hints", &["cli"]),
    ("log", &["protocol", "sys"]),
    ("scoreboard", &["log", "sys"]),
    ("static_files", &["protocol", "sys"]),
    // Options, layers and validation.
    (
        "config",
        &[
            "cli",
            "cli_hints",
            "log",
            "protocol",
            "scoreboard",
            "static_files",
            "sys",
        ],
    ),
    ("socket", &["config", "sys"]),
    ("process", &["config", "log", "sys"]),
    ("stats", &["log", "scoreboard"]),
    // The master–worker contract.
    ("supervise", &["config", "scoreboard", "socket"]),
    ("systemd", &["config", "socket", "supervise", "sys"]),
    // The only pyo3 code: protocol, the request body, and the settings
    // value it is handed (its own type).
    ("wsgi", &["body", "protocol"]),
    (
        "worker",
        &[
            "body",
            "config",
            "log",
            "process",
            "protocol",
            "scoreboard",
            "socket",
            "static_files",
            "supervise",
            "sys",
            "wsgi",
        ],
    ),
    (
        "master",
        &[
            "config",
            "process",
            "protocol",
            "scoreboard",
            "socket",
            "stats",
            "supervise",
            "sys",
            "systemd",
        ],
    ),
    // Start-up: everything above, wired together (`main` calls it).
    (
        "start",
        &[
            "cli",
            "cli_hints",
            "config",
            "log",
            "master",
            "process",
            "socket",
            "sys",
            "systemd",
            "worker",
        ],
    ),
];

/// Modules that depend on nothing of ours but other leaves.
const LEAVES: &[&str] = &[
    "protocol",
    "body",
    "sys",
    "cli",
    "cli_hints",
    "log",
    "scoreboard",
    "static_files",
];

/// One use of another top-level module: `from` uses `to` at `file:line`.
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    at: String,
}

/// The top-level module a source file belongs to (`None` for the crate root
/// files, `lib.rs` and `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    if rel.components().count() == 1 {
        let name = first.strip_suffix(".rs")?;
        return (name != "lib" && name != "main").then(|| name.to_string());
    }
    Some(first.to_string())
}

/// Every `crate::name` in code (comments skipped) of `text`, with its line.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" // ").next().unwrap_or(code);
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            // `$crate::` and `rwsgi_crate::` are not ours.
            let before = rest[..i].chars().last();
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == '$')
                && !name.is_empty()
            {
                out.push((n + 1, name));
            }
            rest = after;
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The edges between top-level modules in the crate's `src/`.
fn source_edges() -> (BTreeSet<String>, Vec<Edge>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut modules = BTreeSet::new();
    let mut edges = Vec::new();
    for file in files {
        let Some(from) = module_of(&src, &file) else {
            continue;
        };
        modules.insert(from.clone());
        let text = std::fs::read_to_string(&file).expect("a source file");
        let shown = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for (line, to) in crate_paths(&text) {
            if to != from {
                edges.push(Edge {
                    from: from.clone(),
                    to,
                    at: format!("{shown}:{line}"),
                });
            }
        }
    }
    (modules, edges)
}

fn allowed(from: &str) -> Option<&'static [&'static str]> {
    ALLOWED.iter().find(|(m, _)| *m == from).map(|(_, a)| *a)
}

/// Each edge the table does not allow, as "file:line: a -> b".
fn forbidden(edges: &[Edge]) -> Vec<String> {
    edges
        .iter()
        .filter(|e| !allowed(&e.from).is_some_and(|a| a.contains(&e.to.as_str())))
        .map(|e| {
            format!(
                "{}: `{}` uses `{}`, which DESIGN.md §6 does not allow",
                e.at, e.from, e.to
            )
        })
        .collect()
}

/// A cycle in the module graph, as "a -> b (file:line) -> ... -> a".
fn cycle(edges: &[Edge]) -> Option<String> {
    let mut graph: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for e in edges {
        graph
            .entry(&e.from)
            .or_default()
            .entry(&e.to)
            .or_insert(&e.at);
    }
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, BTreeMap<&'a str, &'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut ring: Vec<&str> = path[start..].to_vec();
            ring.push(node);
            let steps: Vec<String> = ring
                .windows(2)
                .map(|w| format!("{} -> {} ({})", w[0], w[1], graph[w[0]][w[1]]))
                .collect();
            return Some(steps.join(", "));
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flat_map(|m| m.keys()) {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    let nodes: Vec<&str> = graph.keys().copied().collect();
    nodes
        .into_iter()
        .find_map(|n| visit(n, &graph, &mut Vec::new(), &mut done))
}

#[test]
fn every_module_is_placed_in_the_layering() {
    let (modules, _) = source_edges();
    for m in &modules {
        assert!(
            allowed(m).is_some(),
            "src/{m}: a new top-level module; say what it may use in ALLOWED (tests/layering.rs) and DESIGN.md §6"
        );
    }
    for (m, _) in ALLOWED {
        assert!(modules.contains(*m), "ALLOWED names `{m}`, not in src/");
    }
}

#[test]
fn no_forbidden_edge_between_modules() {
    let (_, edges) = source_edges();
    assert!(edges.len() > 50, "the scan found almost nothing: {edges:?}");
    let bad = forbidden(&edges);
    assert!(bad.is_empty(), "forbidden module uses:\n{}", bad.join("\n"));
}

#[test]
fn no_cycle_between_modules() {
    let (_, edges) = source_edges();
    if let Some(c) = cycle(&edges) {
        panic!("a cycle between top-level modules: {c}");
    }
}

#[test]
fn only_wsgi_uses_pyo3() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        if module_of(&src, &file).as_deref() == Some("wsgi") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            assert!(
                code.starts_with("//") || !code.contains("pyo3"),
                "{}:{}: pyo3 outside src/wsgi/",
                file.display(),
                n + 1
            );
        }
    }
}

/// The supervisor's state machine (`master/pool/`) decides and returns
/// commands; the master carries them out. It reads no clock (time comes in
/// as an argument), sends no signal, forks nothing and touches neither the
/// scoreboard nor /proc — so its unit tests run on a fake clock.
#[test]
fn the_pool_decides_without_io() {
    const IO: &[&str] = &[
        "Instant::now",
        "SystemTime",
        "sys::kill",
        "sys::fork",
        "libc::kill",
        "Scoreboard",
        "memory_of",
        "monotonic",
        "std::fs",
        "std::io",
        "std::process",
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/master/pool");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(files.len() >= 4, "the pool's files are found");
    for file in files {
        if file.ends_with("tests.rs") {
            continue; // the fake master may take the real clock's origin
        }
        let text = std::fs::read_to_string(&file).expect("a source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code == "mod tests {" {
                break; // a file's own unit tests
            }
            if code.starts_with("//") {
                continue;
            }
            for io in IO {
                assert!(
                    !code.contains(io),
                    "{}:{}: `{io}` in the pool: return a Command, or take it as an argument",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}

/// The table itself keeps DESIGN.md §6's rules.
#[test]
fn rules_of_design_hold_on_the_table() {
    let deps = |m: &str| allowed(m).unwrap_or_else(|| panic!("{m} is in ALLOWED"));
    assert!(deps("protocol").is_empty(), "protocol uses nothing of ours");
    for leaf in LEAVES {
        for d in deps(leaf) {
            assert!(LEAVES.contains(d), "leaf {leaf} uses {d}, not a leaf");
        }
    }
    for d in deps("config") {
        assert!(LEAVES.contains(d), "config uses {d}, not a leaf");
    }
    for d in deps("wsgi") {
        assert!(
            ["protocol", "body"].contains(d),
            "wsgi uses {d}: only protocol, body and its settings value"
        );
    }
    assert!(
        !deps("worker").contains(&"master"),
        "worker never uses master"
    );
    assert!(!deps("master").contains(&"wsgi"), "master never uses wsgi");
    let table: Vec<Edge> = ALLOWED
        .iter()
        .flat_map(|(m, ds)| {
            ds.iter().map(|d| Edge {
                from: m.to_string(),
                to: d.to_string(),
                at: "ALLOWED".into(),
            })
        })
        .collect();
    assert_eq!(cycle(&table), None, "the table allows a cycle");
}

/// The scanner finds the edges the layering was cleaned of (issue 14), and
/// names where they are.
#[test]
fn the_old_cycles_would_fail() {
    let old = [
        ("config", "master", "pub use crate::master::ReloadMode;"),
        ("master", "config", "use crate::config::Config;"),
        (
            "worker",
            "master",
            "use crate::master::{Notice, WorkerContext};",
        ),
        ("systemd", "master", "use crate::master::Phase;"),
        ("config", "socket", "crate::socket::resolve_user(u)"),
        ("wsgi", "config", "use crate::config::Config;"),
        ("cli_hints", "config", "crate::config::schema::find(x)"),
    ];
    let mut edges = Vec::new();
    for (i, (from, to, code)) in old.iter().enumerate() {
        let found = crate_paths(code);
        assert_eq!(found, vec![(1, to.to_string())], "{code}");
        edges.push(Edge {
            from: from.to_string(),
            to: to.to_string(),
            at: format!("src/{from}/x.rs:{i}"),
        });
    }
    let bad = forbidden(&edges);
    assert_eq!(
        bad.len(),
        old.len() - 1,
        "all but master -> config: {bad:?}"
    );
    assert!(bad[0].starts_with("src/config/x.rs:0: `config` uses `master`"));
    let c = cycle(&edges).expect("config <-> master");
    assert!(c.contains("config -> master (src/config/x.rs:0)"), "{c}");
    // Comments and other crates' `$crate::` are not uses.
    assert!(crate_paths("// crate::master\n/// see crate::master").is_empty());
    assert!(crate_paths("$crate::master::x()").is_empty());
    assert_eq!(
        crate_paths("use crate::sys; // crate::master"),
        vec![(1, "sys".to_string())]
    );
}
