fn main() -> std::process::ExitCode {
    custos::cli::main()
}
