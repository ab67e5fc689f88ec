//! uWSGI's stats document (what uwsgitop reads), from a [`Snapshot`].

use std::fmt::Write as _;

use super::{append_memory, CoreStat, Snapshot};
use crate::log::access::json_string;

pub fn render_json(s: &Snapshot) -> String {
    let mut o = String::with_capacity(1024 + 512 * s.workers.len());
    let busy = s.workers.iter().filter(|w| w.in_request).count();
    let _ = write!(
        o,
        "{{\"version\":\"{}\",\"listen_queue\":{},\"listen_queue_errors\":0,\"signal_queue\":0,\"load\":{busy},\"pid\":{},\"uid\":{},\"gid\":{},\"cwd\":",
        env!("CARGO_PKG_VERSION"),
        s.listen_queue(),
        s.pid,
        s.uid,
        s.gid
    );
    json_string(&mut o, &s.cwd);
    o.push_str(",\"locks\":[],\"sockets\":[");
    for (i, sock) in s.sockets.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"name\":");
        json_string(&mut o, &sock.name);
        let _ = write!(
            o,
            ",\"proto\":\"{}\",\"queue\":{},\"max_queue\":{},\"shared\":0,\"can_offload\":0}}",
            sock.proto, sock.queue, sock.max_queue
        );
    }
    o.push_str("],\"workers\":[");
    for (i, w) in s.workers.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        let c = &w.counters;
        let avg_rt = c.running_us.checked_div(c.requests).unwrap_or(0);
        let _ = write!(
            o,
            "{{\"id\":{},\"pid\":{},\"accepting\":1,\"requests\":{},\"delta_requests\":{},\"exceptions\":{},\"harakiri_count\":{},\"signals\":0,\"signal_queue\":0,\"status\":\"{}\",\"rss\":{},\"vsz\":{},\"running_time\":{},\"last_spawn\":{},\"respawn_count\":{},\"tx\":{},\"avg_rt\":{avg_rt},\"apps\":[],\"cores\":[",
            w.id,
            w.pid,
            c.requests,
            w.delta_requests,
            c.exceptions,
            w.harakiri_count,
            w.status,
            w.rss,
            w.vsz,
            c.running_us,
            w.last_spawn,
            w.respawn_count,
            c.tx_bytes,
        );
        let single = [CoreStat {
            requests: c.requests,
            in_request: w.in_request,
            label: String::new(),
        }];
        let cores = if w.cores.is_empty() {
            &single[..]
        } else {
            &w.cores[..]
        };
        for (i, core) in cores.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            // Static files are served by the I/O thread: counted on core 0.
            let statics = if i == 0 { c.static_requests } else { 0 };
            let _ = write!(
                o,
                "{{\"id\":{i},\"requests\":{},\"static_requests\":{statics},\"routed_requests\":0,\"offloaded_requests\":0,\"write_errors\":0,\"read_errors\":0,\"in_request\":{},\"vars\":[],\"req_info\":{{",
                core.requests,
                u8::from(core.in_request),
            );
            if core.in_request && !core.label.is_empty() {
                o.push_str("\"request\":");
                json_string(&mut o, &core.label);
            }
            o.push_str("}}");
        }
        o.push_str("]}");
        append_memory(&mut o, &w.memory);
    }
    o.push_str("]}");
    o
}
