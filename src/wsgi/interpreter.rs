//! Starting the embedded CPython in a worker through `PyConfig`.
//!
//! Why `PyConfig` and not `Py_Initialize`: it lets us turn Python's own signal
//! handlers off (the worker installed its handlers first), make stdio
//! unbuffered (a `print` still buffered at `_exit` would be lost), set a real
//! `sys.argv`, and set `executable` to the virtualenv's python, which is what
//! makes `site` find the venv's packages (`home` does not).

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::path::Path;

use pyo3::ffi;

/// Turns a `PyStatus` into an error message when it reports a failure.
fn check(status: ffi::PyStatus, what: &str) -> Result<(), String> {
    // SAFETY: PyStatus_Exception only reads the status struct passed by value.
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return Ok(());
    }
    let msg = if status.err_msg.is_null() {
        "unknown error".to_string()
    } else {
        // SAFETY: err_msg is a static NUL-terminated C string set by CPython.
        unsafe { CStr::from_ptr(status.err_msg) }
            .to_string_lossy()
            .into_owned()
    };
    Err(format!("{what}: {msg}"))
}

fn cstring(s: &str, what: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

/// Initialises the interpreter. `venv` is the virtualenv (`--home`), if any;
/// `argv` becomes `sys.argv`. On return the calling thread does not hold the
/// GIL (take it with `Python::attach`).
pub fn start(venv: Option<&Path>, argv: &[String]) -> Result<(), String> {
    let executable = venv
        .map(|home| home.join("bin").join("python"))
        .map(|p| cstring(&p.to_string_lossy(), "--home path"))
        .transpose()?;
    let args: Vec<CString> = argv
        .iter()
        .map(|a| cstring(a, "an argument"))
        .collect::<Result<_, _>>()?;
    let mut arg_ptrs: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();

    // SAFETY: PyConfig is a plain C struct; PyConfig_InitPythonConfig fills
    // every field before we touch it, the strings we pass outlive the calls
    // (CPython copies them), and PyConfig_Clear frees what CPython allocated.
    unsafe {
        let mut config: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut config);
        config.install_signal_handlers = 0;
        config.buffered_stdio = 0;
        config.parse_argv = 0;
        let result = (|| {
            if let Some(exe) = &executable {
                check(
                    ffi::PyConfig_SetBytesString(&mut config, &mut config.executable, exe.as_ptr()),
                    "setting sys.executable",
                )?;
            }
            check(
                ffi::PyConfig_SetBytesArgv(
                    &mut config,
                    arg_ptrs.len() as ffi::Py_ssize_t,
                    arg_ptrs.as_mut_ptr(),
                ),
                "setting sys.argv",
            )?;
            check(ffi::Py_InitializeFromConfig(&config), "initialising Python")
        })();
        ffi::PyConfig_Clear(&mut config);
        result?;
        // Py_InitializeFromConfig leaves the GIL held by this thread; release
        // it so pyo3's attach/detach bookkeeping starts from a clean state.
        ffi::PyEval_SaveThread();
    }
    Ok(())
}
