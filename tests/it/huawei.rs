//! Cloud `huawei` end to end (filled in with its provider).
