//! Helpers the fault tests share.
