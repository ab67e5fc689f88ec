//! Wire protocols as pure functions over byte slices: no I/O, no logging, no
//! Python. `worker` feeds them bytes; `wsgi` consumes their types.

pub mod chunked;
pub mod date;
mod framing;
pub mod http;
pub mod response;
mod target;
pub mod uwsgi;
