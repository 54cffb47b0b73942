/// mimalloc instead of the system allocator: a request allocates a few
/// hundred small objects across several threads (actix workers, database
/// reading threads), where glibc's allocator was a tenth of the profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    custos::cli::main()
}
