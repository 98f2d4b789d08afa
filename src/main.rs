fn main() {
    std::process::exit(lmforge::cli::main());
}
