//! stsgate's integration tests: one binary, real HTTP, real databases, fake clouds that
//! verify every signature.

mod helpers;

mod aliyun;
mod api;
mod aws;
mod backend;
mod baidu;
mod browser;
mod cli;
mod durability;
mod edges;
mod hostile;
mod huawei;
mod ksyun;
mod ledger;
mod openapi;
mod qiniu;
mod redis;
mod refresh;
mod secrets;
mod storage;
mod sts_common;
mod tencent;
mod webhook;
