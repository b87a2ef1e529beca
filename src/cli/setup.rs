//! What installing and setting up lanyard needs from the binary itself: the settings in force
//! and their origin (`config`), shell completions and man pages from the clap definition.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::config::{Cli, Config, Setting, Source};
use crate::text::printable;

/// `lanyard config`: each setting, its value, and where it came from.
pub fn show_config(config: &Config) -> Result<ExitCode> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "config files, each read over the one before:");
    for file in &config.files {
        let state = if file.read { "read" } else { "not there" };
        let which = match file.source {
            Source::SystemFile => "machine",
            _ => "yours",
        };
        let _ = writeln!(out, "  {which:<8} {}  ({state})", printable(&file.path.display().to_string()));
    }
    out.push('\n');
    let width = config.settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
    for setting in &config.settings {
        let value = if setting.value.is_empty() { "(none)" } else { &setting.value };
        let _ = writeln!(out, "{:<width$}  {}  [{}]", setting.key, printable(value), origin(setting));
    }
    print_all(out.as_bytes(), "the settings")
}

/// All of `text` on stdout; a reader that left early (`| head`) is no error.
fn print_all(text: &[u8], what: &str) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).with_context(|| format!("cannot write {what}")),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// "flag --no-mdns", "environment LANYARD_PORT", "user file": the flag and variable names come
/// from the clap definition, so they cannot drift from it.
fn origin(setting: &Setting) -> String {
    let long = match setting.key {
        "mdns" | "relay" | "localsend" => format!("no-{}", setting.key),
        key => key.to_string(),
    };
    let command = Cli::command();
    let arg = command.get_arguments().find(|a| a.get_long() == Some(long.as_str()));
    match setting.from {
        Source::Flag => format!("flag --{long}"),
        Source::Env => match arg.and_then(|a| a.get_env()) {
            Some(var) => format!("environment {}", var.to_string_lossy()),
            None => "environment".to_string(),
        },
        other => other.describe().to_string(),
    }
}

/// `lanyard completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut command = Cli::command();
    // Into memory first: clap_complete panics on a write error, and a closed pipe (`| head`)
    // is no reason to.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "lanyard", &mut script);
    print_all(&script, "the completion script")
}

/// `lanyard man-pages DIR`: lanyard.1 and lanyard-COMMAND.1 for each command.
pub fn man_pages(dir: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir).with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}
