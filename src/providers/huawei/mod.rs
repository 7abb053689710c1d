//! Cloud provider `huawei` (configuration parsed and validated; see its issue for the rest).
pub mod config;
