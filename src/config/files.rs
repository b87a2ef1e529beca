//! The config files: the machine's (`/etc/lanyard/config.toml`, an administrator's settings for
//! every user) under the user's (`~/.config/lanyard/config.toml`). A key set in the user's file
//! replaces the machine's, a whole list included (`peer = []` clears the machine's peers).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The machine-wide file, read under the user's.
pub const SYSTEM_CONFIG: &str = "/etc/lanyard/config.toml";
/// Names another machine-wide file (tests, or an administrator trying a new one).
pub const SYSTEM_CONFIG_VAR: &str = "LANYARD_SYSTEM_CONFIG";

/// Where a setting in force came from, weakest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    #[default]
    Default,
    SystemFile,
    UserFile,
    Env,
    Flag,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::SystemFile => "system file",
            Source::UserFile => "user file",
            Source::Env => "environment",
            Source::Flag => "flag",
        }
    }
}

/// A config file's keys: the long flag names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub nick: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
    pub download_dir: Option<PathBuf>,
    pub share: Option<Vec<PathBuf>>,
    pub peer: Option<Vec<String>>,
    pub mdns: Option<bool>,
    pub relay: Option<bool>,
    pub deposits: Option<String>,
    #[serde(alias = "deposit_budget")]
    pub deposit_budget: Option<String>,
    #[serde(alias = "deposit_total")]
    pub deposit_total: Option<String>,
    #[serde(alias = "deposit_repair_after")]
    pub deposit_repair_after: Option<String>,
    pub localsend: Option<bool>,
    pub localsend_port: Option<u16>,
    pub localsend_pin: Option<String>,
}

impl FileConfig {
    /// The locker's keys alone (the rest is taken apart key by key).
    pub fn locker_keys(&self) -> FileConfig {
        FileConfig {
            deposits: self.deposits.clone(),
            deposit_budget: self.deposit_budget.clone(),
            deposit_total: self.deposit_total.clone(),
            deposit_repair_after: self.deposit_repair_after.clone(),
            ..FileConfig::default()
        }
    }
}

/// One config file: where it is looked for, and what it said.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub source: Source,
    pub path: PathBuf,
    /// Read (it was there); an absent default file is no error.
    pub read: bool,
}

/// A file to read: one named by the user must exist, the default one may be absent.
pub struct Wanted {
    pub path: PathBuf,
    pub must_exist: bool,
}

impl Wanted {
    /// The machine's file: `LANYARD_SYSTEM_CONFIG` if set (then it must exist), else
    /// [`SYSTEM_CONFIG`].
    pub fn system() -> Wanted {
        match std::env::var_os(SYSTEM_CONFIG_VAR) {
            Some(path) => Wanted {
                path: path.into(),
                must_exist: true,
            },
            None => Wanted {
                path: SYSTEM_CONFIG.into(),
                must_exist: false,
            },
        }
    }

    pub fn load(self, source: Source, home: Option<&Path>) -> Result<(FileConfig, ConfigFile)> {
        let there = self.path.exists();
        let file = ConfigFile {
            source,
            path: self.path,
            read: there,
        };
        if !there {
            if self.must_exist {
                bail!("config file {} does not exist", file.path.display());
            }
            return Ok((FileConfig::default(), file));
        }
        let mut config = read(&file.path)?;
        if source == Source::SystemFile {
            // Each user's own: one machine-wide value would give every user the same name, or
            // point every user's node at one data dir (one node per data dir).
            for (key, set) in [("nick", config.nick.is_some()), ("data-dir", config.data_dir.is_some())] {
                if set {
                    bail!(
                        "bad config file {}: {key} is each user's own, not a machine-wide setting",
                        file.path.display()
                    );
                }
            }
        }
        config.expand_home(home);
        Ok((config, file))
    }
}

fn read(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("bad config file {}", path.display()))
}

impl FileConfig {
    /// `~/...` in a file's paths is the user's home, so one machine-wide line
    /// (`download-dir = "~/lab"`) means a folder of each user's.
    fn expand_home(&mut self, home: Option<&Path>) {
        let Some(home) = home else { return };
        let expand = |p: &mut PathBuf| {
            if let Ok(rest) = p.strip_prefix("~") {
                *p = home.join(rest);
            }
        };
        self.data_dir.iter_mut().for_each(expand);
        self.download_dir.iter_mut().for_each(expand);
        self.share.iter_mut().flatten().for_each(expand);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_missing_default_file_is_no_error_but_a_named_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.toml");
        let optional = Wanted {
            path: path.clone(),
            must_exist: false,
        };
        let (config, file) = optional.load(Source::SystemFile, None).unwrap();
        assert!(!file.read && config.port.is_none());
        let named = Wanted { path, must_exist: true };
        let err = named.load(Source::SystemFile, None).unwrap_err();
        assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    }

    #[test]
    fn the_machine_file_may_not_set_what_is_each_users_own() {
        let dir = tempfile::tempdir().unwrap();
        for line in ["nick = \"lab\"\n", "data-dir = \"/srv/lanyard\"\n"] {
            let path = write(dir.path(), "system.toml", line);
            let wanted = || Wanted {
                path: path.clone(),
                must_exist: true,
            };
            let err = wanted().load(Source::SystemFile, None).unwrap_err();
            assert!(format!("{err:#}").contains("each user's own"), "{err:#}");
            wanted().load(Source::UserFile, None).unwrap();
        }
    }

    #[test]
    fn a_tilde_in_a_files_paths_is_the_users_home() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "c.toml",
            "download-dir = \"~/lab\"\nshare = [\"~/public\", \"/srv/x\"]\n",
        );
        let wanted = Wanted { path, must_exist: true };
        let (config, _) = wanted.load(Source::SystemFile, Some(Path::new("/home/ada"))).unwrap();
        assert_eq!(config.download_dir, Some(PathBuf::from("/home/ada/lab")));
        assert_eq!(config.share, Some(vec![PathBuf::from("/home/ada/public"), PathBuf::from("/srv/x")]));
    }
}
