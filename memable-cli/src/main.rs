//! The stock `memable` operator command: every command on any redb,
//! SQLite or PostgreSQL store. `check` needs an application's workflows:
//! build your own command with [`memable_cli::App`].

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    memable_cli::App::new("memable").main()
}
