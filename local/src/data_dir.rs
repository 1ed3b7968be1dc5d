//! The data directory: the SQLite database, the signing key, the user-token secret and the mail
//! files. Missing pieces are created on first start; existing ones are never overwritten.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use keygate::signing::KeyRing;
use keygate::user_token::UserTokens;

pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn open(root: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(root)
            .map_err(|e| format!("cannot create the data directory {}: {e}", root.display()))?;
        Ok(Self { root: root.to_owned() })
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("keygate.db")
    }

    pub fn mail(&self) -> PathBuf {
        self.root.join("mail")
    }

    pub fn signing_key(&self) -> Result<String, String> {
        self.read_or_create("signing-key.pem", KeyRing::generate_pem)
    }

    /// The secret the deployment's webhooks are signed with (`whsec_…`), made on first use.
    pub fn webhook_secret(&self) -> Result<String, String> {
        self.read_or_create("webhook-secret", || keygate::webhook::new_secret().expose().to_owned())
    }

    pub fn user_token_secret(&self) -> Result<String, String> {
        self.read_or_create("user-token-secret", UserTokens::generate_secret)
    }

    /// Reads `name`, or creates it (readable by the owner only) with `make()`. Creation uses
    /// `create_new`, so two processes starting at once cannot overwrite each other's file.
    fn read_or_create(&self, name: &str, make: impl FnOnce() -> String) -> Result<String, String> {
        let path = self.root.join(name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                let content = make();
                file.write_all(content.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                tracing::info!(file = %path.display(), "created");
                Ok(content)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
            Err(e) => Err(format!("cannot create {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_created_once_and_never_overwritten() {
        let root = std::env::temp_dir().join(format!("keygate-datadir-{}", std::process::id()));
        let dir = DataDir::open(&root).unwrap();
        let first = dir.signing_key().unwrap();
        assert_eq!(dir.signing_key().unwrap(), first);
        assert_eq!(dir.user_token_secret().unwrap(), dir.user_token_secret().unwrap());
        std::fs::remove_dir_all(root).unwrap();
    }
}
