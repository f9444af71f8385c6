//! Benchmark support: the servers `benches/load.sh` drives, and shared fixtures.
//!
//! The load script compares the board against a bare hyper server in the same run, so the
//! ratio (not the absolute rate, which drifts on shared machines) is what we track.
