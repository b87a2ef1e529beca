#![forbid(unsafe_code)]

use std::process::ExitCode;

// jemalloc, with its background thread purging freed pages (dirty and muzzy decay, 10 s each):
// after a burst the process goes back near its idle size on its own, which glibc's malloc did
// not do even with two arenas (see README, "Memory"). No unsafe code on our side.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
