//! Cloud providers.
pub mod crypto;
pub mod error;
pub use error::ProviderError;
