//! latency (see issue 4).
