fn main() -> std::process::ExitCode {
    donkies_server::cli::main()
}
