//! stsgate's integration tests: one binary, real HTTP, real databases, fake clouds that
//! verify every signature.

mod fakes {
    pub mod aliyun_sts;
    pub mod jwks;
    pub mod ksyun_sts;
    pub mod lke;
    pub mod sts;
}
mod helpers;

mod aliyun;
mod api;
mod aws;
mod baidu;
mod cli;
mod edges;
mod huawei;
mod ksyun;
mod openapi;
mod qiniu;
mod secrets;
mod tencent;
