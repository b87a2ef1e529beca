//! A node's long-term identity: a static X25519 keypair for Noise, kept in the data dir.
//!
//! The id other nodes know us by is derived from the public key, so a peer can't claim an id
//! without holding the matching private key: the handshake proves possession.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The Noise suite our static keys are made for. AES-GCM because this CPU class has AES-NI/VAES
/// (measured: see README).
pub const NOISE_PARAMS: &str = "Noise_XX_25519_AESGCM_SHA256";

const KEY_FILE: &str = "identity.key";
const HEADER: &str = "lanyard-identity-v1";
/// Bytes of the key hash that make up an id: 80 bits, 16 base32 characters.
const ID_BYTES: usize = 10;

/// A node id: base32 of a hash of its static public key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeerId(String);

impl PeerId {
    pub fn from_public_key(public: &[u8]) -> PeerId {
        let hash = key_hash(public);
        PeerId(data_encoding::BASE32_NOPAD.encode(&hash.as_bytes()[..ID_BYTES]).to_lowercase())
    }

    /// Parse an id typed by a user or read from the network; refuses anything that isn't one.
    pub fn parse(s: &str) -> Option<PeerId> {
        let s = s.to_ascii_lowercase();
        let ok = s.len() == 16 && s.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
        ok.then_some(PeerId(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 8-character form shown in lists.
    pub fn short(&self) -> &str {
        &self.0[..8]
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

fn key_hash(public: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_derive_key("lanyard 2026 peer id");
    h.update(public);
    h.finalize()
}

/// The fingerprint people compare by voice or on screen: 32 hex digits in groups of four.
pub fn fingerprint(public: &[u8]) -> String {
    let hex = hex(&key_hash(public).as_bytes()[..16]);
    hex.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub struct Identity {
    private: Vec<u8>,
    public: Vec<u8>,
    id: PeerId,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Identity {
    /// Load the identity of `data_dir`, creating it on first start. Anything odd about an
    /// existing key file is an error: silently minting a new identity would make every peer see
    /// a stranger.
    pub fn load_or_create(data_dir: &Path) -> Result<Identity> {
        let path = data_dir.join(KEY_FILE);
        match fs::symlink_metadata(&path) {
            Ok(_) => Self::load(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(&path),
            Err(e) => Err(e).with_context(|| format!("cannot read identity key {}", path.display())),
        }
    }

    pub fn generate() -> Result<Identity> {
        let params = NOISE_PARAMS.parse().context("noise parameters")?;
        let kp = snow::Builder::new(params).generate_keypair().context("generating a keypair")?;
        Ok(Self::from_parts(kp.private, kp.public))
    }

    fn from_parts(private: Vec<u8>, public: Vec<u8>) -> Identity {
        let id = PeerId::from_public_key(&public);
        Identity { private, public, id }
    }

    fn create(path: &Path) -> Result<Identity> {
        let identity = Self::generate()?;
        let text = format!(
            "{HEADER}\n{}\n{}\n{}\n",
            hex(&identity.private),
            hex(&identity.public),
            checksum(&identity.private, &identity.public)
        );
        // Written whole under a temporary name, then linked into place: two processes starting
        // at once never see a half-written key, and the loser adopts the winner's.
        let tmp = path.with_extension(format!("tmp{}-{}", std::process::id(), rand::random::<u32>()));
        let written = (|| {
            let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::hard_link(&tmp, path)
        })();
        let _ = fs::remove_file(&tmp);
        match written {
            Ok(()) => {
                // The link is a directory entry: make it durable, or a power cut right after
                // the first start could bring up a different identity next time.
                if let Some(dir) = path.parent() {
                    fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .with_context(|| format!("cannot sync {}", dir.display()))?;
                }
                Ok(identity)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(e).with_context(|| format!("cannot create identity key {}", path.display())),
        }
    }

    fn load(path: &Path) -> Result<Identity> {
        let shown = path.display();
        let meta = fs::symlink_metadata(path)?;
        if !meta.is_file() {
            bail!("identity key {shown} is not a regular file");
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!("identity key {shown} is accessible by other users (mode {mode:03o}); fix it with: chmod 600 {shown}");
        }
        let text = fs::read_to_string(path).with_context(|| format!("cannot read identity key {shown}"))?;
        Self::parse(&text, &shown.to_string())
    }

    /// A key file's text (what `load` reads), `shown` naming it in errors.
    fn parse(text: &str, shown: &str) -> Result<Identity> {
        let lines: Vec<&str> = text.lines().collect();
        let corrupt =
            || anyhow::anyhow!("identity key {shown} is corrupt; restore it from a backup or move it away to start as a new identity");
        let [header, private, public, sum] = lines[..] else {
            return Err(corrupt());
        };
        if header != HEADER {
            return Err(corrupt());
        }
        let private = unhex(private).filter(|k| k.len() == 32).ok_or_else(corrupt)?;
        let public = unhex(public).filter(|k| k.len() == 32).ok_or_else(corrupt)?;
        if checksum(&private, &public) != sum {
            return Err(corrupt());
        }
        Ok(Self::from_parts(private, public))
    }

    /// The data dir's key file as text, checked: what an exported identity carries.
    pub fn key_text(data_dir: &Path) -> Result<String> {
        let path = data_dir.join(KEY_FILE);
        Self::load(&path)?;
        fs::read_to_string(&path).with_context(|| format!("cannot read identity key {}", path.display()))
    }

    /// Make the key in `text` (a key file's text) the data dir's identity. A data dir with
    /// another key keeps it unless `replace`: then it is kept beside, renamed, never deleted.
    pub fn install(data_dir: &Path, text: &str, replace: bool) -> Result<PeerId> {
        let identity = Self::parse(text, "the imported identity")?;
        let path = data_dir.join(KEY_FILE);
        if fs::symlink_metadata(&path).is_ok() {
            let current = Self::load(&path)?;
            if current.id == identity.id {
                return Ok(identity.id);
            }
            if !replace {
                bail!(
                    "this data dir already has an identity ({}); give --replace to keep it aside and use the imported one",
                    current.id.short()
                );
            }
            let aside = data_dir.join(format!("{KEY_FILE}.replaced-{}", current.id.short()));
            fs::rename(&path, &aside).with_context(|| format!("cannot move {} aside", path.display()))?;
        }
        let tmp = path.with_extension(format!("tmp{}-{}", std::process::id(), rand::random::<u32>()));
        let written = (|| {
            let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(data_dir)?.sync_all()
        })();
        let _ = fs::remove_file(&tmp);
        written.with_context(|| format!("cannot write identity key {}", path.display()))?;
        Ok(identity.id)
    }

    pub fn id(&self) -> &PeerId {
        &self.id
    }

    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    pub(crate) fn private_key(&self) -> &[u8] {
        &self.private
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public)
    }
}

fn checksum(private: &[u8], public: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(private);
    h.update(public);
    hex(&h.finalize().as_bytes()[..8])
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    data_encoding::HEXLOWER_PERMISSIVE.decode(s.as_bytes()).ok()
}

/// Create `dir` (and parents) if missing, owner-only: it holds the key and the history.
pub fn ensure_private_dir(dir: &Path) -> Result<PathBuf> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    }
    if !dir.is_dir() {
        bail!("data dir {} is not a directory", dir.display());
    }
    // It holds the key, the history and the control socket: owner-only, also when it existed.
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("data dir {} is open to other users and cannot be made private", dir.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// Every regular file directly in `dir` owner-only (the database and its journals, the lock):
/// a data dir loosened by hand, or files an older version left readable, are closed again. Run
/// once the key is loaded: a key found readable by others is an error to see, not to mend.
pub fn make_files_private(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read data dir {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o600))
                .with_context(|| format!("{} is open to other users and cannot be made private", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_keeps_the_same_id() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path()).unwrap();
        let b = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.public_key(), b.public_key());
        let mode = fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn loosened_files_in_the_data_dir_are_closed_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("lanyard.sqlite3");
        fs::write(&db, b"").unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(dir.path()).unwrap();
        make_files_private(dir.path()).unwrap();
        assert_eq!(fs::metadata(&db).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Identity::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn corrupt_key_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let text = fs::read_to_string(&path).unwrap();
        let flipped = text.replacen(&hex(&first.public)[..2], "00", 1);
        let flipped = if flipped == text {
            text.replacen(&hex(&first.public)[..2], "11", 1)
        } else {
            flipped
        };
        fs::write(&path, flipped).unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("corrupt"), "{err}");
        fs::write(&path, "garbage").unwrap();
        assert!(Identity::load_or_create(dir.path()).is_err());
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_identity() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<PeerId> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Identity::load_or_create(dir.path()).unwrap().id().clone()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary files left behind");
    }

    #[test]
    fn an_open_data_dir_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        fs::create_dir(&data).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&data).unwrap();
        assert_eq!(fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn ids_parse_and_shorten() {
        let id = Identity::generate().unwrap().id().clone();
        assert_eq!(PeerId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(PeerId::parse(&id.as_str().to_uppercase()), Some(id.clone()));
        assert_eq!(id.short().len(), 8);
        assert!(PeerId::parse("not-an-id").is_none());
        assert!(PeerId::parse("0000000000000000").is_none());
    }
}
