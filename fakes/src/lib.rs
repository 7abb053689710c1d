//! Fake clouds for stsgate's tests and local runs. Each fake speaks real HTTP on 127.0.0.1,
//! verifies every request's signature with its own code (never stsgate's signers), answers
//! in the cloud's own format, and can be told to fail through one [`Mode`].
//!
//! One module per cloud, plus what they share: [`bucket`] (stored objects and the `HEAD`
//! answer), [`common`] (the failure script, the call
//! log, serving, browser-form checks), [`multipart`] (the browser's form encoding) and
//! [`jwks`] (a JWT issuer's key set).

pub mod aliyun;
pub mod aws;
pub mod baidu;
pub mod bucket;
pub mod common;
pub mod huawei;
pub mod jwks;
pub mod ksyun;
pub mod multipart;
pub mod qiniu;
pub mod tencent;

pub use common::Mode;
