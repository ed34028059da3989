//! Steady-state iterations allocate nothing: every buffer an update needs
//! is allocated when the optimizer is built.
//!
//! A counting global allocator wraps the system allocator. Each algorithm
//! and mode runs three iterations to reach steady state, then five more
//! through ask/tell while allocations are counted. Dimensions are kept
//! small so no buffer is filled on the rayon pool, whose job bookkeeping
//! may allocate.

use heft_search::testfns::sphere;
use heft_search::{build, Algorithm, Bounds, Mode, Optimizer, Progress, Settings};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System` upholds the `GlobalAlloc` contract for it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `realloc`'s contract, which we pass on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn iterate(opt: &mut dyn Optimizer, fitness: &mut Vec<f64>, iterations: usize) {
    let d = opt.dim();
    let mut done = 0;
    while done < iterations {
        fitness.clear();
        fitness.extend(opt.ask().chunks(d).map(sphere));
        if opt.tell(fitness).unwrap() == Progress::Iteration {
            done += 1;
        }
    }
}

#[test]
fn steady_state_allocates_nothing() {
    let bounds = Bounds::uniform(16, -3.0, 3.0).unwrap();
    for alg in Algorithm::ALL {
        let modes: &[Mode] = if alg.has_study_mode() {
            &[Mode::Opytimizer214, Mode::Canonical]
        } else {
            &[Mode::Canonical]
        };
        for &mode in modes {
            let s = Settings::new(bounds.clone(), 8, 3).with_mode(mode);
            let before_build = ALLOCATIONS.load(Ordering::Relaxed);
            let mut opt = build(alg, &s).unwrap();
            assert!(
                ALLOCATIONS.load(Ordering::Relaxed) > before_build,
                "the counter missed the allocations of build"
            );
            let mut fitness = Vec::with_capacity(64);
            iterate(opt.as_mut(), &mut fitness, 3);
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            iterate(opt.as_mut(), &mut fitness, 5);
            let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
            assert_eq!(
                allocations,
                0,
                "{} {}: {allocations} allocations in 5 iterations",
                alg.name(),
                mode.name()
            );
        }
    }
}
