//! Cloud `aws` end to end (filled in with its provider).
