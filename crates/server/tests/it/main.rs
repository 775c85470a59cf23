//! The server's integration tests, as one binary: the harness is compiled once, and tests
//! that only need *a* Redis share one (see `RedisServer::shared`). Each module is one area.

mod harness;

mod abuse;
mod blobs;
mod budgets;
mod caps;
mod cluster;
mod durability;
mod exactly_once;
mod faults;
mod follow;
mod frames;
mod hardening;
mod http;
mod inbound;
mod laser;
mod links;
mod protection;
mod redis_auth;
mod redis_cluster;
mod replicas;
mod rooms;
mod versions;
