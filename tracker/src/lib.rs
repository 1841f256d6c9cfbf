//! The tracker: peer registry under licensing and region rules, as a sans-IO core and its driver.
//!
//! Empty until its issue lands; the shared protocol lives in `protocol`, the data plane in
//! `transport`.
