//! Discovery (being built).
