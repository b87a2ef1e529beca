use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = lanyard::config::Cli::from_env();
    match lanyard::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lanyard: {}", lanyard::text::one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
