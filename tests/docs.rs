//! The documentation matches the binary: every long flag `--help` lists is
//! documented in rwsgi(1), and the man page renders without warnings.

use std::process::Command;

fn help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rwsgi"))
        .arg("--help")
        .output()
        .expect("run rwsgi --help");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8 help")
}

fn man_page() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/rwsgi.1"))
        .expect("read man/rwsgi.1")
}

/// Long flags and aliases as `--help` prints them.
fn long_flags(help: &str) -> Vec<String> {
    let mut flags: Vec<String> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_alphanumeric())
                .to_string()
        })
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn every_flag_is_in_the_man_page() {
    let man = man_page().replace("\\-", "-");
    let flags = long_flags(&help());
    assert!(
        flags.len() > 20,
        "parsed too few flags from --help: {flags:?}"
    );
    let missing: Vec<&String> = flags.iter().filter(|f| !man.contains(f.as_str())).collect();
    assert!(
        missing.is_empty(),
        "flags missing from man/rwsgi.1: {missing:?}"
    );
}

#[test]
fn man_page_renders_without_warnings() {
    let out = Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/man/rwsgi.1"))
        .output()
        .expect("groff is needed (scripts/test installs groff-base)");
    assert!(out.status.success(), "groff failed");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(warnings.trim().is_empty(), "groff warnings:\n{warnings}");
}
