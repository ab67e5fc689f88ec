//! Links against the configured CPython's shared libpython and records its
//! directory as an rpath, so the binary runs without LD_LIBRARY_PATH.
//! `PYO3_PYTHON=/path/to/python3` chooses another interpreter. The version
//! and library directory are recorded too, for `--version`, the start-up log
//! and the `--home` check (EMBEDDED_PYTHON_VERSION, EMBEDDED_PYTHON_LIBDIR;
//! not RWSGI_*: `cargo run` and `cargo test` put these in the environment,
//! where rwsgi would take them for options).

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    let config = pyo3_build_config::get();
    let version = config.version();
    println!(
        "cargo:rustc-env=EMBEDDED_PYTHON_VERSION={}.{}",
        version.major, version.minor
    );
    let libdir = config.lib_dir().unwrap_or("(system default)");
    println!("cargo:rustc-env=EMBEDDED_PYTHON_LIBDIR={libdir}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
