//! stsgate's integration tests: one binary, real HTTP, real databases, fake clouds that
//! verify every signature.

mod fakes {
    pub mod aliyun_sts;
    pub mod lke;
}
mod helpers;

mod aliyun;
mod api;
mod aws;
mod baidu;
mod cli;
mod huawei;
mod ksyun;
mod openapi;
mod qiniu;
mod secrets;
mod tencent;
