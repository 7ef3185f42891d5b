//! Authentication: the token-signing secret, JWTs and password hashes.

pub mod secret;
