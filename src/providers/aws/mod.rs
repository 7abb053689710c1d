//! Cloud type 2: AWS S3 and S3-compatible stores (configuration parsed and validated; the
//! SigV4 signer in [`sign`] is shared with KSyun; see the AWS issue for the rest).
pub mod config;
pub mod sign;
