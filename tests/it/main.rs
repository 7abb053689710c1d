//! stsgate's integration tests: one binary, real HTTP, real databases, fake clouds that
//! verify every signature.

mod fakes {
    pub mod lke;
}
mod helpers;

mod aliyun;
mod aws;
mod baidu;
mod huawei;
mod ksyun;
mod qiniu;
mod tencent;
