//! The search box and the handling of points that leave it.

use crate::error::SearchError;
use crate::rng::RandomSource;
use std::str::FromStr;
use wide::f32x8;

/// Lanes of the vector loop in [`Bounds::clip`].
const LANES: usize = 8;

/// Loads 8 values from a slice of exactly 8 elements.
fn load(values: &[f32]) -> f32x8 {
    let mut lanes = [0.0f32; LANES];
    lanes.copy_from_slice(values);
    f32x8::from(lanes)
}

/// A box: one closed interval `[lower[j], upper[j]]` per dimension.
///
/// A dimension with `lower == upper` is allowed and pins that coordinate.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds {
    lower: Vec<f32>,
    upper: Vec<f32>,
}

impl Bounds {
    /// Creates a box from per-dimension lower and upper bounds.
    ///
    /// # Errors
    ///
    /// [`SearchError::EmptyBounds`] for zero dimensions,
    /// [`SearchError::BoundsLengthMismatch`], [`SearchError::NonFinite`] for
    /// a NaN or infinite bound and [`SearchError::LowerAboveUpper`].
    pub fn new(lower: Vec<f32>, upper: Vec<f32>) -> Result<Self, SearchError> {
        if lower.len() != upper.len() {
            return Err(SearchError::BoundsLengthMismatch {
                lower: lower.len(),
                upper: upper.len(),
            });
        }
        if lower.is_empty() {
            return Err(SearchError::EmptyBounds);
        }
        for (index, (&lo, &hi)) in lower.iter().zip(&upper).enumerate() {
            if !lo.is_finite() {
                return Err(SearchError::NonFinite {
                    what: "lower bound",
                    index,
                    value: lo,
                });
            }
            if !hi.is_finite() {
                return Err(SearchError::NonFinite {
                    what: "upper bound",
                    index,
                    value: hi,
                });
            }
            if lo > hi {
                return Err(SearchError::LowerAboveUpper {
                    index,
                    lower: lo,
                    upper: hi,
                });
            }
        }
        Ok(Bounds { lower, upper })
    }

    /// Creates the box `[centre[j] - delta, centre[j] + delta]`, as used
    /// around pre-trained weights `w0`.
    ///
    /// # Errors
    ///
    /// [`SearchError::EmptyBounds`] for an empty centre,
    /// [`SearchError::NonFinite`] for a non-finite centre coordinate or
    /// half-width, [`SearchError::NegativeDelta`], and
    /// [`SearchError::NonFinite`] if a bound overflows f32.
    pub fn around(centre: &[f32], delta: f32) -> Result<Self, SearchError> {
        if !delta.is_finite() {
            return Err(SearchError::NonFinite {
                what: "half-width",
                index: 0,
                value: delta,
            });
        }
        if delta < 0.0 {
            return Err(SearchError::NegativeDelta { delta });
        }
        if let Some((index, &value)) = centre.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(SearchError::NonFinite {
                what: "centre coordinate",
                index,
                value,
            });
        }
        let lower = centre.iter().map(|&c| c - delta).collect();
        let upper = centre.iter().map(|&c| c + delta).collect();
        Self::new(lower, upper)
    }

    /// Creates a box with the same interval in every dimension.
    ///
    /// # Errors
    ///
    /// As [`Bounds::new`].
    pub fn uniform(dim: usize, lower: f32, upper: f32) -> Result<Self, SearchError> {
        Self::new(vec![lower; dim], vec![upper; dim])
    }

    /// Returns the number of dimensions.
    pub fn dim(&self) -> usize {
        self.lower.len()
    }

    /// Returns the lower bounds.
    pub fn lower(&self) -> &[f32] {
        &self.lower
    }

    /// Returns the upper bounds.
    pub fn upper(&self) -> &[f32] {
        &self.upper
    }

    /// Returns true if every coordinate of `point` lies inside the box.
    pub fn contains(&self, point: &[f32]) -> bool {
        point.len() == self.dim()
            && point
                .iter()
                .zip(&self.lower)
                .zip(&self.upper)
                .all(|((&x, &lo), &hi)| x >= lo && x <= hi)
    }

    /// Returns a uniform draw in `[lower[j], upper[j]]`.
    ///
    /// The arithmetic is in f64, so boxes close to the f32 range do not
    /// overflow, and the result is clamped so rounding cannot leave the box.
    pub(crate) fn sample(&self, j: usize, u: f64) -> f32 {
        let (lo, hi) = (self.lower[j] as f64, self.upper[j] as f64);
        ((lo + u * (hi - lo)) as f32).clamp(self.lower[j], self.upper[j])
    }

    /// Returns the width `upper[j] - lower[j]`, computed in f64.
    pub(crate) fn width(&self, j: usize) -> f64 {
        self.upper[j] as f64 - self.lower[j] as f64
    }

    /// Fills `rows` (whole rows of `dim()` coordinates) with uniform points
    /// of the box, one draw per coordinate, all taken in one
    /// [`RandomSource::fill_uniform_fast`] call so a population is filled in
    /// parallel chunks when it is large.
    ///
    /// A point is `lower (1 - u) + upper u` in f32, which cannot overflow
    /// for any finite bounds, then clamped into the box against rounding.
    /// The loop has no branches, so it runs on vector registers.
    pub(crate) fn sample_rows(&self, rows: &mut [f32], rng: &mut dyn RandomSource) {
        debug_assert!(rows.len().is_multiple_of(self.dim()));
        rng.fill_uniform_fast(rows);
        for row in rows.chunks_exact_mut(self.dim()) {
            for ((x, &lo), &hi) in row.iter_mut().zip(&self.lower).zip(&self.upper) {
                let u = *x;
                *x = (lo * (1.0 - u) + hi * u).max(lo).min(hi);
            }
        }
    }

    /// Moves every coordinate of `row` into the box with `handler`.
    ///
    /// `velocity`, when given, is changed for each coordinate that was out of
    /// the box, as `velocity_handling` specifies. NaN coordinates go to the centre
    /// of the interval under `Clip` and `Reflect`, and are redrawn under
    /// `Random`. Random draws happen only for coordinates that were out of
    /// the box, in increasing index order.
    pub(crate) fn repair(
        &self,
        row: &mut [f32],
        handler: BoundHandler,
        mut velocity: Option<(&mut [f32], VelocityHandling)>,
        rng: &mut dyn RandomSource,
    ) {
        if handler == BoundHandler::Clip {
            self.clip(row, velocity);
            return;
        }
        for j in 0..row.len() {
            let (lo, hi) = (self.lower[j], self.upper[j]);
            let x = row[j];
            if x >= lo && x <= hi {
                continue;
            }
            row[j] = match handler {
                BoundHandler::Clip => {
                    if x.is_nan() {
                        self.centre(j)
                    } else {
                        x.clamp(lo, hi)
                    }
                }
                BoundHandler::Reflect => self.reflect(j, x),
                BoundHandler::Random => self.sample(j, rng.uniform()),
            };
            if let Some((v, rule)) = velocity.as_mut() {
                match rule {
                    VelocityHandling::Keep => {}
                    VelocityHandling::Zero => v[j] = 0.0,
                    VelocityHandling::Reverse => v[j] = -v[j],
                }
            }
        }
    }

    /// Runs [`repair`](Bounds::repair) with [`BoundHandler::Clip`] on 8
    /// lanes without branches, so that coordinates leaving the box at random
    /// cost no mispredicted branches. The results are those of the
    /// per-coordinate rule: in-box values stay, others go to the nearest
    /// bound, and NaN goes to the centre in a second pass taken only when the
    /// row has a NaN.
    fn clip(&self, row: &mut [f32], velocity: Option<(&mut [f32], VelocityHandling)>) {
        let d = row.len();
        let (lower, upper) = (&self.lower[..d], &self.upper[..d]);
        let mut velocity = match velocity {
            Some((v, VelocityHandling::Zero)) => Some((&mut v[..d], false)),
            Some((v, VelocityHandling::Reverse)) => Some((&mut v[..d], true)),
            Some((_, VelocityHandling::Keep)) | None => None,
        };
        let mut has_nan = f32x8::ZERO;
        let whole = d - d % LANES;
        for start in (0..whole).step_by(LANES) {
            let lanes = start..start + LANES;
            let x = load(&row[lanes.clone()]);
            let (lo, hi) = (load(&lower[lanes.clone()]), load(&upper[lanes.clone()]));
            has_nan |= x.simd_ne(x);
            if let Some((v, reverse)) = velocity.as_mut() {
                let inside = x.simd_ge(lo) & x.simd_le(hi);
                let vj = load(&v[lanes.clone()]);
                let outside_value = if *reverse { -vj } else { f32x8::ZERO };
                v[lanes.clone()].copy_from_slice(&inside.select(vj, outside_value).to_array());
            }
            // A NaN compares false both times and stays for the pass below.
            let above_lower = x.simd_lt(lo).select(lo, x);
            let clipped = above_lower.simd_gt(hi).select(hi, above_lower);
            row[lanes].copy_from_slice(&clipped.to_array());
        }
        let mut tail_nan = false;
        for j in whole..d {
            let x = row[j];
            let (lo, hi) = (lower[j], upper[j]);
            tail_nan |= x.is_nan();
            if let Some((v, reverse)) = velocity.as_mut() {
                if !(x >= lo && x <= hi) {
                    v[j] = if *reverse { -v[j] } else { 0.0 };
                }
            }
            row[j] = if x < lo {
                lo
            } else if x > hi {
                hi
            } else {
                x
            };
        }
        if has_nan.any() || tail_nan {
            for (j, x) in row.iter_mut().enumerate() {
                if x.is_nan() {
                    *x = self.centre(j);
                }
            }
        }
    }

    fn centre(&self, j: usize) -> f32 {
        let c = 0.5 * (self.lower[j] as f64 + self.upper[j] as f64);
        (c as f32).clamp(self.lower[j], self.upper[j])
    }

    /// Folds `x` back into `[lo, hi]` as a mirror would, any number of times.
    fn reflect(&self, j: usize, x: f32) -> f32 {
        let (lo, hi) = (self.lower[j] as f64, self.upper[j] as f64);
        let width = hi - lo;
        if x.is_nan() {
            return self.centre(j);
        }
        if x.is_infinite() || width == 0.0 {
            return if x > 0.0 {
                self.upper[j]
            } else {
                self.lower[j]
            };
        }
        let period = 2.0 * width;
        let offset = (x as f64 - lo).rem_euclid(period);
        let folded = if offset <= width {
            lo + offset
        } else {
            hi - (offset - width)
        };
        (folded as f32).clamp(self.lower[j], self.upper[j])
    }
}

/// The rule that moves a coordinate outside the box back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BoundHandler {
    /// Set it to the nearest bound. This is what Opytimizer 2.1.4 does.
    #[default]
    Clip,
    /// Mirror it at the bound it crossed, folding as often as needed.
    Reflect,
    /// Draw it again uniformly in its interval.
    Random,
}

impl BoundHandler {
    /// Names accepted by [`FromStr`].
    pub const NAMES: &'static [&'static str] = &["clip", "reflect", "random"];

    /// Returns the name of the handler.
    pub fn name(self) -> &'static str {
        match self {
            BoundHandler::Clip => "clip",
            BoundHandler::Reflect => "reflect",
            BoundHandler::Random => "random",
        }
    }
}

impl FromStr for BoundHandler {
    type Err = SearchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "clip" => Ok(BoundHandler::Clip),
            "reflect" => Ok(BoundHandler::Reflect),
            "random" => Ok(BoundHandler::Random),
            _ => Err(SearchError::UnknownBoundHandler { name: s.to_owned() }),
        }
    }
}

/// The change PSO and RPSO make to the velocity of a coordinate that left the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VelocityHandling {
    /// Leave it unchanged. This is what Opytimizer 2.1.4 does.
    #[default]
    Keep,
    /// Set it to zero.
    Zero,
    /// Negate it.
    Reverse,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix;

    #[test]
    fn bounds_errors() {
        assert_eq!(Bounds::new(vec![], vec![]), Err(SearchError::EmptyBounds));
        assert!(matches!(
            Bounds::new(vec![0.0, 2.0], vec![1.0, 1.0]),
            Err(SearchError::LowerAboveUpper { index: 1, .. })
        ));
        assert!(matches!(
            Bounds::new(vec![f32::NAN], vec![1.0]),
            Err(SearchError::NonFinite {
                what: "lower bound",
                ..
            })
        ));
        assert!(matches!(
            Bounds::new(vec![0.0], vec![f32::INFINITY]),
            Err(SearchError::NonFinite {
                what: "upper bound",
                ..
            })
        ));
        assert!(matches!(
            Bounds::new(vec![0.0], vec![1.0, 2.0]),
            Err(SearchError::BoundsLengthMismatch { .. })
        ));
        assert!(matches!(
            Bounds::around(&[0.0], -1.0),
            Err(SearchError::NegativeDelta { .. })
        ));
        assert!(matches!(
            Bounds::around(&[0.0], f32::NAN),
            Err(SearchError::NonFinite { .. })
        ));
        assert!(matches!(
            Bounds::around(&[f32::MAX], f32::MAX),
            Err(SearchError::NonFinite { .. })
        ));
        assert_eq!(Bounds::around(&[], 0.1), Err(SearchError::EmptyBounds));
    }

    #[test]
    fn below_lower_clips_to_lower() {
        let b = Bounds::new(vec![-1.0, 0.0], vec![1.0, 2.0]).unwrap();
        let mut row = [-5.0, 7.0];
        b.repair(&mut row, BoundHandler::Clip, None, &mut SplitMix::new(0));
        assert_eq!(row, [-1.0, 2.0]);
    }

    #[test]
    fn reflect_folds_repeatedly() {
        let b = Bounds::new(vec![0.0], vec![1.0]).unwrap();
        for (x, expected) in [(1.25f32, 0.75f32), (-0.25, 0.25), (2.5, 0.5), (-3.25, 0.75)] {
            let mut row = [x];
            b.repair(&mut row, BoundHandler::Reflect, None, &mut SplitMix::new(0));
            assert!(
                (row[0] - expected).abs() < 1e-6,
                "{x} -> {} (expected {expected})",
                row[0]
            );
        }
    }

    #[test]
    fn velocity_rules() {
        let b = Bounds::uniform(2, 0.0, 1.0).unwrap();
        let mut row = [2.0, 0.5];
        let mut v = [3.0, 3.0];
        b.repair(
            &mut row,
            BoundHandler::Clip,
            Some((&mut v, VelocityHandling::Reverse)),
            &mut SplitMix::new(0),
        );
        assert_eq!(v, [-3.0, 3.0]);
        let mut row = [2.0, 0.5];
        b.repair(
            &mut row,
            BoundHandler::Clip,
            Some((&mut v, VelocityHandling::Zero)),
            &mut SplitMix::new(0),
        );
        assert_eq!(v, [0.0, 3.0]);
    }

    #[test]
    fn handler_names() {
        assert_eq!("Reflect".parse::<BoundHandler>(), Ok(BoundHandler::Reflect));
        let err = "bounce".parse::<BoundHandler>().unwrap_err().to_string();
        assert!(err.contains("clip, reflect, random"), "{err}");
    }
}
