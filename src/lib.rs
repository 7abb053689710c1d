//! stsgate — a credential broker for direct-to-cloud uploads.
pub mod providers;
