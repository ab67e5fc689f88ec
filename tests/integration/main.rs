//! Integration tests: each starts the real rwsgi binary (see `harness`) and
//! talks to it over real sockets, as a user or a proxy would.

mod harness;
mod http;
mod load;

mod basic;
mod config;
mod config_limits;
mod container;
mod defer_accept;
mod errors;
mod flask;
mod hardening;
mod hostile;
mod keepalive;
mod lifecycle;
mod migration;
mod newcomer;
mod nginx;
mod observability;
mod pep3333;
mod preload;
mod protocol;
mod security;
mod startup_errors;
mod static_files;
mod supervision;
mod systemd;
mod threads;
mod threads_review;
mod uwsgi;
mod wsgi;
