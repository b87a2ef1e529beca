#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = lanyard::config::Cli::from_env();
    match lanyard::cli::run(cli) {
        Ok(code) => code,
        // `lanyard history PEER | head`: the reader went away; nothing to say about it.
        Err(e)
            if e.chain()
                .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(lanyard::cli::output::is_closed_pipe)) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lanyard: {}", lanyard::text::one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
