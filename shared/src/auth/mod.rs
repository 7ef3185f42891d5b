//! Authentication: the token-signing secret, JWTs, password hashes and the parsed credentials
//! an account is made of.

pub mod credentials;
pub mod jwt;
pub mod password;
pub mod secret;
