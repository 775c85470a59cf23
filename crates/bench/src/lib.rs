//! Kokuban's load generator and benchmark harness.
//!
//! It drives Kokuban, a Socket.IO + Redis baseline and the floor (`kokuban-floor`, the
//! cheapest relay of the same frames) with the same scenarios on the same machine in the same
//! run, and writes the figures (`BENCHMARKS.md`, `bench/results.json`, SVG plots). Every
//! figure comes from a measurement of this run; nothing is hard-coded.

pub mod acks;
pub mod clients;
pub mod deployment;
pub mod engineio;
pub mod holds;
pub mod http;
pub mod join;
pub mod joinstorm;
pub mod net;
pub mod pentrace;
pub mod plan;
pub mod plot;
pub mod procfs;
pub mod procs;
pub mod profile;
pub mod report;
pub mod scenario;
pub mod shards;
pub mod stamp;
pub mod stats;
pub mod sweep;
pub mod syscalls;
pub mod targets;
