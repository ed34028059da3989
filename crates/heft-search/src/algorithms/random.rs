//! Uniform random search in the box: the control every other algorithm
//! should beat.
//!
//! Each iteration draws `P` new points uniformly in the box (one uniform per
//! coordinate) and scores them in one batch. The initial population is the
//! first such batch, with [`Settings::initial_point`] as row 0 if given.
//!
//! # Evaluations
//!
//! `P` for the initial population, then `P` per iteration.

use crate::checkpoint::{Reader, Writer};
use crate::error::SearchError;
use crate::optimizer::{read_bool, Algorithm, Batch, Core, Engine, Mode, Progress, Settings};
use crate::rng::RandomSource;

/// Uniform random search.
pub struct RandomSearch {
    core: Core,
    initialized: bool,
}

impl RandomSearch {
    /// Builds random search.
    ///
    /// # Errors
    ///
    /// The shared checks of [`Settings`].
    pub fn new(settings: &Settings, rng: Box<dyn RandomSource>) -> Result<Self, SearchError> {
        Ok(RandomSearch {
            core: Core::new(settings, Algorithm::RandomSearch, rng, 0)?,
            initialized: false,
        })
    }
}

impl Engine for RandomSearch {
    fn core(&self) -> &Core {
        &self.core
    }

    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::RandomSearch
    }

    fn mode(&self) -> Mode {
        Mode::Canonical
    }

    fn evaluations_per_iteration(&self) -> u64 {
        self.core.n as u64
    }

    fn prepare(&mut self) -> Batch {
        if self.initialized {
            let Core {
                pos, rng, bounds, ..
            } = &mut self.core;
            bounds.sample_rows(pos, rng.as_mut());
        }
        Batch::Population
    }

    fn absorb(&mut self, _batch: Batch, fitness: &[f64]) -> Progress {
        for (i, &f) in fitness.iter().enumerate() {
            self.core.fit[i] = f;
            self.core.offer_row(i, f);
        }
        if self.initialized {
            Progress::Iteration
        } else {
            self.initialized = true;
            Progress::Initialized
        }
    }

    fn save_extra(&self, w: &mut Writer) {
        w.u8(self.initialized as u8);
    }

    fn load_extra(&mut self, r: &mut Reader) -> Result<(), SearchError> {
        self.initialized = read_bool(r, "initialized")?;
        Ok(())
    }
}
