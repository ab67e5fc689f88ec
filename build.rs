//! Links against the configured CPython's shared libpython and records its
//! directory as an rpath, so the binary runs without LD_LIBRARY_PATH.
//! `PYO3_PYTHON=/path/to/python3` chooses another interpreter.

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
