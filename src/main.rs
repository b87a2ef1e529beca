use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = lanyard::config::Cli::parse();
    match lanyard::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lanyard: {}", lanyard::text::one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
