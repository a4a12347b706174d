// jemalloc, not glibc malloc, for Rust and C allocations alike: see Cargo.toml.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    steward::cli::main()
}
