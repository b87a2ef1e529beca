//! An identity carried to another machine (`lanyard id export` / `id import`): the key and the
//! nick, encrypted with a passphrase (age's scrypt recipient), so that the owner of deposits can
//! list and retrieve them from any lab machine.

use std::path::Path;

use age::secrecy::SecretString;
use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::identity::{Identity, PeerId};
use crate::limits::MAX_IDENTITY_EXPORT;
use crate::store::{DB_FILE, Store};

const FORMAT: &str = "lanyard-identity-export-v1";

#[derive(Serialize, Deserialize)]
struct Carried {
    format: String,
    key: String,
    nick: Option<String>,
}

/// The data dir's identity and nick, encrypted with `passphrase`.
pub fn export_identity(data_dir: &Path, passphrase: &str) -> Result<Vec<u8>> {
    if passphrase.is_empty() {
        bail!("an empty passphrase would protect nothing");
    }
    let dir = super::ensure_private_dir(data_dir)?;
    let key = Identity::key_text(&dir)?;
    let nick = Store::open(&dir.join(DB_FILE))?.setting("nick")?;
    let plain = serde_json::to_vec(&Carried {
        format: FORMAT.into(),
        key,
        nick,
    })?;
    let recipient = age::scrypt::Recipient::new(SecretString::from(passphrase.to_owned()));
    age::encrypt(&recipient, &plain).map_err(|e| anyhow!("cannot encrypt the identity: {e}"))
}

/// Make the identity in `sealed` (from [`export_identity`]) this data dir's, with its nick.
/// Refused while a node runs on the data dir, and over another identity unless `replace`.
pub fn import_identity(data_dir: &Path, sealed: &[u8], passphrase: &str, replace: bool) -> Result<(PeerId, Option<String>)> {
    if sealed.len() > MAX_IDENTITY_EXPORT {
        bail!("not an exported lanyard identity (over {MAX_IDENTITY_EXPORT} bytes)");
    }
    let identity = age::scrypt::Identity::new(SecretString::from(passphrase.to_owned()));
    let plain = age::decrypt(&identity, sealed).map_err(|e| match e {
        age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
            anyhow!("wrong passphrase (or not an exported identity)")
        }
        other => anyhow!("not an exported lanyard identity: {other}"),
    })?;
    let carried: Carried = serde_json::from_slice(&plain).context("not an exported lanyard identity")?;
    if carried.format != FORMAT {
        bail!(
            "an identity exported by another version of lanyard ({})",
            crate::text::printable(&carried.format)
        );
    }
    let dir = super::ensure_private_dir(data_dir)?;
    // Held while the key changes: no node may start on it meanwhile, and none may run.
    let _lock = super::take_lock(&dir)?;
    let id = Identity::install(&dir, &carried.key, replace)?;
    let nick = carried.nick.filter(|n| super::validate_nick(n).is_ok());
    if let Some(n) = &nick {
        super::nick::keep(&Store::open(&dir.join(DB_FILE))?, n)?;
    }
    Ok((id, nick))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_travels_with_its_nick_and_only_with_the_passphrase() {
        let a = tempfile::tempdir().unwrap();
        let (id, _) = super::super::identity_of(a.path()).unwrap();
        super::super::nick::keep(&Store::open(&a.path().join(DB_FILE)).unwrap(), "ada").unwrap();
        let sealed = export_identity(a.path(), "correct horse").unwrap();
        assert!(
            !sealed
                .windows(8)
                .any(|w| w == &Identity::key_text(a.path()).unwrap().as_bytes()[20..28])
        );

        let b = tempfile::tempdir().unwrap();
        let wrong = import_identity(b.path(), &sealed, "wrong", false).unwrap_err();
        assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
        let (got, nick) = import_identity(b.path(), &sealed, "correct horse", false).unwrap();
        assert_eq!(got, id);
        assert_eq!(nick.as_deref(), Some("ada"));
        assert_eq!(super::super::identity_of(b.path()).unwrap().0, id);

        // Over another identity: only when asked, and the other one is kept aside.
        let c = tempfile::tempdir().unwrap();
        let (other, _) = super::super::identity_of(c.path()).unwrap();
        assert!(import_identity(c.path(), &sealed, "correct horse", false).is_err());
        assert_eq!(super::super::identity_of(c.path()).unwrap().0, other);
        import_identity(c.path(), &sealed, "correct horse", true).unwrap();
        assert_eq!(super::super::identity_of(c.path()).unwrap().0, id);
    }
}
