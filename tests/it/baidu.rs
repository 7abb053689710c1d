//! Cloud `baidu` end to end (filled in with its provider).
