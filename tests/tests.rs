//! End-to-end tests: the real `moongate` binary against a real upstream and, where a test runs on
//! Redis, a real `redis-server`. One test binary keeps link time low.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared set-up: start a gateway on either backend with APIs pointing at a test upstream.
mod common;

// Token auth and Tyk's session checks, every row of the table, on both backends.
mod auth;
// Session lifetime (eviction), hashed keys, and what reaches Redis and the logs.
mod sessions;
// The admin API: secrets, key create/read/update/delete/list with Tyk's bodies and codes.
mod admin;
// Proxying: routing, path stripping, headers, bodies, upstream failures, limits.
mod proxy;
// Lua hooks: every phase and Tyk JSVM behaviour, limits, sandbox, the example scripts.
mod hooks;
// Live reload: file edits, renames, symlink swaps, polling, SIGHUP and the admin API, under load.
mod reload;
// Operations: metrics, readiness, graceful shutdown, settings and secrets from the environment.
mod ops;
// The docs keep up with the code: every setting of the schema is in the operator guide.
mod docs;
// Redis going away and coming back while the gateway runs.
mod redis_outage;
// `moongate validate` and start-up with broken configuration.
mod validate;
