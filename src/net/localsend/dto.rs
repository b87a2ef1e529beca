//! The JSON LocalSend devices exchange, as 1.17 (Dart, protocol 2.1) and 1.18 (Rust core,
//! "2.2") write it: what both accept is what we read, what both expect is what we write.
//! Every string in here came from a stranger: neutralise it before it reaches a terminal.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The protocol version we announce: 2.2 is what 1.18 speaks (mandatory client certificates,
/// verified sha256), which we do.
pub const VERSION: &str = "2.2";

/// A device as it describes itself: the body of `register`, the answer of `info`, the `info`
/// of a `prepare-upload`, and (with the announce flag) a multicast announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    pub alias: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub device_model: Option<String>,
    #[serde(default)]
    pub device_type: Option<String>,
    #[serde(default)]
    pub fingerprint: String,
    /// Absent from `register` answers and `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default)]
    pub download: bool,
}

impl DeviceInfo {
    /// The device type as one of LocalSend's words; anything else (or none) is a desktop.
    pub fn kind(&self) -> &'static str {
        match self.device_type.as_deref() {
            Some("mobile") => "mobile",
            Some("web") => "web",
            Some("headless") => "headless",
            Some("server") => "server",
            _ => "desktop",
        }
    }

    /// The scheme to reach it by: https unless it says http.
    pub fn https(&self) -> bool {
        self.protocol.as_deref() != Some("http")
    }
}

/// A multicast datagram. 1.18 says `announce`, 1.17 says both `announce` and the v1
/// `announcement`; either being true asks for an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    #[serde(flatten)]
    pub info: DeviceInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announcement: Option<bool>,
}

impl Announcement {
    pub fn wants_answer(&self) -> bool {
        self.announce == Some(true) || self.announcement == Some(true)
    }
}

/// One file of an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDto {
    pub id: String,
    /// May hold '/' (a folder's files carry their relative path).
    pub file_name: String,
    pub size: u64,
    /// A MIME type in v2; one of v1's words (image, video, pdf, text, apk, other) from old
    /// senders. Informational only.
    #[serde(default)]
    pub file_type: String,
    /// Hex SHA-256 of the content; 1.17 named it `hash` (and left it null).
    #[serde(default, alias = "hash", skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The text itself, for a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FileMetadata>,
}

impl FileDto {
    /// A text file by its type, in v2's words (`text/…`) or v1's (`text`).
    pub fn is_text(&self) -> bool {
        self.file_type.starts_with("text/") || self.file_type == "text"
    }

    /// The declared SHA-256 as bytes; `None` when absent, `Some(None)` when it is no hash.
    pub fn sha256_bytes(&self) -> Option<Option<[u8; 32]>> {
        let hex = self.sha256.as_deref()?;
        if hex.len() != 64 {
            return Some(None);
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => out[i] = (h * 16 + l) as u8,
                _ => return Some(None),
            }
        }
        Some(Some(out))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accessed: Option<String>,
}

/// The body of `prepare-upload`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrepareUpload {
    pub info: DeviceInfo,
    pub files: BTreeMap<String, FileDto>,
}

/// Its answer: the session and a token per accepted file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareAnswer {
    pub session_id: String,
    pub files: BTreeMap<String, String>,
}

/// Every error's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

/// One value of a URL query, percent-decoded (`+` is a space); `None` if absent or not UTF-8.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k)? == name).then(|| decode(v)).flatten()
    })
}

fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
                if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'%' => return None,
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encode a query value (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_of_1_17_and_1_18_are_read() {
        // 1.17 (Dart): both flags, protocol 2.1.
        let old = r#"{"alias":"Nice Orange","version":"2.1","deviceModel":"Samsung","deviceType":"mobile",
            "fingerprint":"abc","port":53317,"protocol":"https","download":false,"announcement":true,"announce":true}"#;
        let a: Announcement = serde_json::from_str(old).unwrap();
        assert!(a.wants_answer());
        assert_eq!(a.info.kind(), "mobile");
        assert_eq!(a.info.port, Some(53317));
        // v1 flag alone.
        let v1: Announcement = serde_json::from_str(r#"{"alias":"x","fingerprint":"f","announcement":true}"#).unwrap();
        assert!(v1.wants_answer());
        // 1.18: announce only, nullable model and type; an unknown type is a desktop.
        let new = r#"{"alias":"Smart Pear","version":"2.2","deviceModel":null,"deviceType":"toaster",
            "fingerprint":"DEF","port":53317,"protocol":"https","announce":true}"#;
        let a: Announcement = serde_json::from_str(new).unwrap();
        assert!(a.wants_answer());
        assert_eq!((a.info.kind(), a.info.download, a.info.https()), ("desktop", false, true));
        // A reply (1.17's multicast fallback) asks for none.
        let reply: Announcement = serde_json::from_str(r#"{"alias":"x","fingerprint":"f","announce":false}"#).unwrap();
        assert!(!reply.wants_answer());
        // Ours: announce set, no v1 flag, camelCase keys.
        let ours = Announcement {
            info: DeviceInfo {
                alias: "ada".into(),
                version: VERSION.into(),
                device_model: Some("lanyard".into()),
                device_type: Some("desktop".into()),
                fingerprint: "F".into(),
                port: Some(53317),
                protocol: Some("https".into()),
                download: false,
            },
            announce: Some(true),
            announcement: None,
        };
        let v: serde_json::Value = serde_json::to_value(&ours).unwrap();
        assert_eq!(v["deviceModel"], "lanyard");
        assert_eq!(v["announce"], true);
        assert!(v.get("announcement").is_none());
    }

    #[test]
    fn files_of_1_17_and_1_18_are_read() {
        // 1.17: `hash` (null), a v1 file type, no metadata.
        let old: FileDto =
            serde_json::from_str(r#"{"id":"a","fileName":"p.jpg","size":3,"fileType":"image","hash":null,"preview":null}"#).unwrap();
        assert_eq!(old.sha256, None);
        assert!(!old.is_text());
        let text: FileDto = serde_json::from_str(r#"{"id":"t","fileName":"x.txt","size":2,"fileType":"text","preview":"hi"}"#).unwrap();
        assert!(text.is_text());
        // 1.17 with a hash under its old key.
        let hashed: FileDto = serde_json::from_str(&format!(
            r#"{{"id":"a","fileName":"p","size":3,"fileType":"other","hash":"{}"}}"#,
            "ab".repeat(32)
        ))
        .unwrap();
        assert_eq!(hashed.sha256_bytes(), Some(Some([0xab; 32])));
        // 1.18: sha256 and metadata with fractional seconds.
        let new: FileDto = serde_json::from_str(&format!(
            r#"{{"id":"b","fileName":"dir/f.bin","size":0,"fileType":"application/octet-stream","sha256":"{}",
            "preview":null,"metadata":{{"modified":"2026-08-21T10:00:00.123456Z","accessed":null}}}}"#,
            "00".repeat(32)
        ))
        .unwrap();
        assert_eq!(new.sha256_bytes(), Some(Some([0; 32])));
        assert_eq!(new.metadata.unwrap().modified.as_deref(), Some("2026-08-21T10:00:00.123456Z"));
        let bad: FileDto = serde_json::from_str(r#"{"id":"c","fileName":"x","size":1,"sha256":"zz"}"#).unwrap();
        assert_eq!(bad.sha256_bytes(), Some(None));
        // A size that is not a u64 is no offer.
        assert!(serde_json::from_str::<FileDto>(r#"{"id":"c","fileName":"x","size":-1}"#).is_err());
        // The answer's keys.
        let answer = PrepareAnswer {
            session_id: "s".into(),
            files: [("a".to_string(), "t".to_string())].into(),
        };
        assert_eq!(serde_json::to_string(&answer).unwrap(), r#"{"sessionId":"s","files":{"a":"t"}}"#);
    }

    #[test]
    fn query_values_are_decoded() {
        let q = Some("sessionId=abc&fileId=a%2Fb+c&token=%E2%9C%93&pin=");
        assert_eq!(query_param(q, "sessionId").as_deref(), Some("abc"));
        assert_eq!(query_param(q, "fileId").as_deref(), Some("a/b c"));
        assert_eq!(query_param(q, "token").as_deref(), Some("✓"));
        assert_eq!(query_param(q, "pin").as_deref(), Some(""));
        assert_eq!(query_param(q, "nope"), None);
        assert_eq!(query_param(Some("x=%4"), "x"), None);
        assert_eq!(query_param(Some("x=%zz"), "x"), None);
        assert_eq!(query_param(Some("x=%+f"), "x"), None);
        assert_eq!(query_param(None, "x"), None);
        assert_eq!(encode("a/b c✓"), "a%2Fb%20c%E2%9C%93");
        assert_eq!(
            query_param(Some(&format!("x={}", encode("a/b c✓"))), "x").as_deref(),
            Some("a/b c✓")
        );
    }
}
