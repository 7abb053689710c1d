//! Cloud `qiniu` end to end (filled in with its provider).
