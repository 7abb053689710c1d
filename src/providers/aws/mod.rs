//! Cloud provider `aws` (configuration parsed and validated; see its issue for the rest).
pub mod config;
