//! The discrete-event simulator and link emulator that run the real state machines.
//!
//! Empty until its issue lands; the shared protocol lives in `protocol`, the data plane in
//! `transport`.
