//! One self-signed certificate is this machine's LocalSend identity, as server and as client:
//! its fingerprint (SHA-256 of the DER, uppercase hex) is what devices announce, pin and
//! remember. ECDSA P-256: ring, already our crypto, can make it (it cannot make RSA), and the
//! 1.18 apps check self-signatures with whatever ring verifies.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};

const CERT_FILE: &str = "localsend-cert.der";
const KEY_FILE: &str = "localsend-key.der";
/// What LocalSend's own apps put in their certificate's subject.
const COMMON_NAME: &str = "LocalSend User";

#[derive(Clone)]
pub struct DeviceCert {
    /// The certificate, DER.
    pub cert: Vec<u8>,
    /// Its private key, PKCS#8 DER.
    pub key: Vec<u8>,
    pub fingerprint: String,
}

impl std::fmt::Debug for DeviceCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCert")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a certificate's DER, as LocalSend writes it.
pub fn fingerprint(der: &[u8]) -> String {
    hex_upper(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Fingerprints compare without regard to case (1.17 and 1.18 differ).
pub fn same_fingerprint(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl DeviceCert {
    /// The data dir's certificate, made on first use (owner-only files). A half-present pair is
    /// an error, not a reason to make a new identity devices would see as a stranger.
    pub fn load_or_create(data_dir: &Path) -> Result<DeviceCert> {
        let (cert_path, key_path) = (data_dir.join(CERT_FILE), data_dir.join(KEY_FILE));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let cert = fs::read(&cert_path).with_context(|| format!("cannot read {}", cert_path.display()))?;
                let key = fs::read(&key_path).with_context(|| format!("cannot read {}", key_path.display()))?;
                if cert.is_empty() || key.is_empty() {
                    bail!(
                        "{} or {} is empty: remove both for a new LocalSend identity",
                        cert_path.display(),
                        key_path.display()
                    );
                }
                Ok(DeviceCert {
                    fingerprint: fingerprint(&cert),
                    cert,
                    key,
                })
            }
            (false, false) => {
                let made = Self::generate()?;
                write_private(&key_path, &made.key)?;
                write_private(&cert_path, &made.cert)?;
                Ok(made)
            }
            _ => bail!(
                "only one of {} and {} exists: remove it for a new LocalSend identity",
                cert_path.display(),
                key_path.display()
            ),
        }
    }

    pub fn generate() -> Result<DeviceCert> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).context("generating a LocalSend key")?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).context("certificate parameters")?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, COMMON_NAME);
        let cert = params.self_signed(&key).context("signing the LocalSend certificate")?;
        let der = cert.der().to_vec();
        Ok(DeviceCert {
            fingerprint: fingerprint(&der),
            cert: der,
            key: key.serialize_der(),
        })
    }
}

/// Owner-only from the start, written whole under another name and renamed.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_certificate_persists_privately_and_its_fingerprint_is_sha256_of_the_der() {
        let dir = tempfile::tempdir().unwrap();
        let a = DeviceCert::load_or_create(dir.path()).unwrap();
        let b = DeviceCert::load_or_create(dir.path()).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.cert, b.cert);
        assert_eq!(a.fingerprint.len(), 64);
        assert!(a.fingerprint.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
        let der = fs::read(dir.path().join(CERT_FILE)).unwrap();
        assert_eq!(fingerprint(&der), a.fingerprint);
        for f in [CERT_FILE, KEY_FILE] {
            let mode = fs::metadata(dir.path().join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        assert_ne!(DeviceCert::generate().unwrap().fingerprint, a.fingerprint);
        // Half a pair is refused, not replaced.
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        assert!(DeviceCert::load_or_create(dir.path()).is_err());
    }

    #[test]
    fn fingerprints_compare_without_case() {
        assert!(same_fingerprint("ABCDEF01", "abcdef01"));
        assert!(!same_fingerprint("ABCDEF01", "ABCDEF02"));
        assert_eq!(hex_upper(&[0, 0xab, 0x10]), "00AB10");
    }
}
