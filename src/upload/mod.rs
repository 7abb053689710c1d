//! The domain: request validation, key layout, callback info, idempotency and the issue
//! service that ties the ledger to a provider.

pub mod answer;
pub mod idempotency;
pub mod layout;
pub mod module;
pub mod params;
pub mod service;
