//! Random initialisation at the edges of the valid sizes and bounds.

use heft_nn::{Lstm, NnError, SplitMix64};

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
