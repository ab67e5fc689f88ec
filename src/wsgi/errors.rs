//! `wsgi.errors`: what the app writes there goes to the server log, a line at
//! a time, tagged with the worker's pid by the log format.

use pyo3::prelude::*;

#[pyclass(module = "rwsgi", name = "Errors")]
pub struct Errors {
    partial: String,
}

impl Errors {
    pub fn new() -> Errors {
        Errors {
            partial: String::new(),
        }
    }
}

#[pymethods]
impl Errors {
    fn write(&mut self, s: &str) -> usize {
        self.partial.push_str(s);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            log::error!(target: "rwsgi::app", "{}", line.trim_end_matches('\n'));
        }
        s.chars().count()
    }

    fn writelines(&mut self, lines: Vec<String>) {
        for l in lines {
            self.write(&l);
        }
    }

    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            log::error!(target: "rwsgi::app", "{line}");
        }
    }
}
