//! Wire protocols as pure functions over byte slices: no I/O, no logging, no
//! Python. `worker` feeds them bytes; `wsgi` consumes their types.

pub mod chunked;
pub mod date;
pub mod http;
pub mod response;
pub mod uwsgi;
