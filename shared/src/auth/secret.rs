//! The JWT signing secret: from configuration, or (embedded mode) generated once and kept in
//! the data directory with mode 0600 so that tokens survive restarts.

use std::{io::Write, path::Path};

use rand::RngCore;

use crate::config::{Config, Secret};

const SECRET_FILE: &str = "jwt_secret";

#[derive(Debug, thiserror::Error)]
#[error("cannot read or create the JWT secret file {path}: {source}")]
pub struct SecretError {
    path: String,
    source: std::io::Error,
}

/// The configured secret, or the one kept in the data directory (created on first use).
pub fn load_or_create(config: &Config) -> Result<Secret, SecretError> {
    match &config.jwt_secret {
        Some(secret) => Ok(secret.clone()),
        None => load_or_create_in(&config.data_dir),
    }
}

fn load_or_create_in(dir: &Path) -> Result<Secret, SecretError> {
    let path = dir.join(SECRET_FILE);
    let err = |source| SecretError {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(Secret::new(s.trim())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes()).map_err(err)?;
            Ok(Secret::new(secret))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let s = std::fs::read_to_string(&path).map_err(err)?;
            Ok(Secret::new(s.trim()))
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_secret_is_kept_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("llmops-secret-{}", uuid::Uuid::new_v4()));
        let first = load_or_create_in(&dir).unwrap();
        let second = load_or_create_in(&dir).unwrap();
        assert_eq!(first.expose(), second.expose());
        assert_eq!(first.expose().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
