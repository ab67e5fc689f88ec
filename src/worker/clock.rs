//! The worker's wall clock: the `Date` header, formatted once per second.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::date::{http_date, DATE_LEN};

pub struct DateCache {
    secs: u64,
    value: [u8; DATE_LEN],
}

impl DateCache {
    pub fn new() -> DateCache {
        DateCache {
            secs: u64::MAX,
            value: [b' '; DATE_LEN],
        }
    }

    /// The `Date` value for now.
    pub fn now(&mut self) -> [u8; DATE_LEN] {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.secs {
            self.secs = secs;
            self.value = http_date(secs);
        }
        self.value
    }
}
