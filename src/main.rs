/// Large buffers (activations, packed operands, parameters) on transparent huge pages.
#[global_allocator]
static ALLOC: lmforge_model::hugepages::HugePageAlloc = lmforge_model::hugepages::HugePageAlloc;

fn main() {
    std::process::exit(lmforge::cli::main());
}
