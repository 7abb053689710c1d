//! Cloud `aliyun` end to end (filled in with its provider).
