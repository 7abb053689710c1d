//! Cloud type 0: Qiniu (upload tokens signed locally; verified Qiniu callbacks).
pub mod callback;
pub mod config;
pub mod sign;
