//! Where the command line keeps the user's sign-ins: `credentials.json` in the user's config
//! directory (`$KEYGATE_CONFIG_DIR`, or `~/.config/keygate` on Linux), one user token per
//! deployment URL, the file readable by its owner only (mode 0600, its directory 0700).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::{Failure, Result};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Credentials {
    /// The deployment signed in to last: the default `--url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// User tokens by deployment URL.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
}

pub fn dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("KEYGATE_CONFIG_DIR") {
        return Ok(dir.into());
    }
    dirs::config_dir()
        .map(|d| d.join("keygate"))
        .ok_or_else(|| Failure::Local("no config directory: set KEYGATE_CONFIG_DIR".into()))
}

fn file(dir: &Path) -> PathBuf {
    dir.join("credentials.json")
}

impl Credentials {
    pub fn load() -> Result<Self> {
        let path = file(&dir()?);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                Failure::Local(format!("{} is not valid ({e}); remove it and sign in again", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Failure::Local(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// Writes the file with mode 0600 from its creation (never world-readable, not even for an
    /// instant), replacing the previous one atomically.
    pub fn save(&self) -> Result<PathBuf> {
        let dir = dir()?;
        let local = |e: std::io::Error, what: &Path| Failure::Local(format!("cannot write {}: {e}", what.display()));
        create_private_dir(&dir).map_err(|e| local(e, &dir))?;
        let path = file(&dir);
        let partial = dir.join(".credentials.json.partial");
        let text = serde_json::to_string_pretty(self).expect("credentials serialize");
        write_private(&partial, text.as_bytes()).map_err(|e| local(e, &partial))?;
        std::fs::rename(&partial, &path).map_err(|e| local(e, &path))?;
        Ok(path)
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    // The mode given at creation is narrowed by the umask, never widened; set it exactly.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
