//! TEST FIXTURE, not a tool: an application's own operator command built
//! with `memable_cli::App`, registering the fixture workflow `order` (v2,
//! see `tests/fixture/workflows.rs`), so the end-to-end tests can run
//! `check` the way an application would.

#![forbid(unsafe_code)]

#[path = "../../tests/fixture/workflows.rs"]
mod workflows;

fn main() -> std::process::ExitCode {
    memable_cli::App::new("fixture-app")
        .workflows(workflows::register_v2)
        .main()
}
