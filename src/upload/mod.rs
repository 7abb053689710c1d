//! The domain: request validation, key layout, callback info, idempotency, the issue
//! service that ties the ledger to a provider, and upload callbacks.

pub mod answer;
pub mod callback;
pub mod idempotency;
pub mod layout;
pub mod module;
pub mod params;
pub mod service;
