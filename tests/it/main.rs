//! stsgate's integration tests: one binary, real HTTP, real databases, fake clouds that
//! verify every signature.

mod fakes {
    pub mod aliyun_sts;
    pub mod baidu_sts;
    pub mod huawei_iam;
    pub mod jwks;
    pub mod ksyun_sts;
    pub mod lke;
    pub mod sts;
    pub mod upstream;
}
mod helpers;

mod aliyun;
mod api;
mod aws;
mod baidu;
mod cli;
mod durability;
mod edges;
mod huawei;
mod ksyun;
mod openapi;
mod qiniu;
mod redis;
mod secrets;
mod sts_common;
mod tencent;
