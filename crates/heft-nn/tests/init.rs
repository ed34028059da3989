//! Random initialisation at the edges of the valid sizes and bounds.

use heft_nn::{Linear, LinearInit, Lstm, NnError, SplitMix64};

#[test]
fn lstm_init_rejects_overflowing_gate_rows() {
    let hidden = usize::MAX / 2;
    let err = Lstm::init(3, hidden, &mut SplitMix64::new(0)).unwrap_err();
    assert!(
        matches!(
            err,
            NnError::InvalidConfig {
                name: "layer size",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "invalid layer size: a hidden size of {hidden} gives 4 x {hidden} gate rows, more \
             than usize can count; use a smaller hidden size"
        )
    );
}

#[test]
fn uniform_init_with_largest_bound_is_finite() {
    let bound = f32::MAX;
    let layer = Linear::init(3, 2, LinearInit::Uniform { bound }, &mut SplitMix64::new(0)).unwrap();
    for &w in layer.weight().as_slice().iter().chain(layer.bias()) {
        assert!(w.is_finite(), "weight {w} is not finite");
        assert!(
            (-bound..bound).contains(&w),
            "weight {w} is outside the bound"
        );
    }
}

#[test]
fn uniform_draw_keeps_ordinary_values() {
    // The draw for a finite width is unchanged, so seeded weights reproduce.
    let mut rng = SplitMix64::new(7);
    let mut same = SplitMix64::new(7);
    let expected = -0.5 + 1.5 * same.next_f32();
    assert_eq!(rng.uniform(-0.5, 1.0), expected);
}
