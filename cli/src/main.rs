//! `kubectl-ferrolb`, a kubectl plugin (`kubectl ferrolb …`).

fn main() -> std::process::ExitCode {
    eprintln!("kubectl-ferrolb: subcommands are being added");
    std::process::ExitCode::FAILURE
}
