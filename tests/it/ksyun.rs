//! Cloud `ksyun` end to end (filled in with its provider).
