//! The CLI's view of the tuning engine in `heft-tune`: models, splits
//! borrowed from the loaded datasets, and scoring.

use crate::data::{DenseSplit, TokenSplit};
pub use heft_tune::{Evaluation, Fitness, Model, ModelObjective, Target};

/// Borrowed rows to score a model on.
#[derive(Clone, Copy)]
pub enum Split<'a> {
    Dense(&'a DenseSplit),
    Tokens(&'a TokenSplit),
}

impl<'a> Split<'a> {
    /// Returns the engine's view of the same rows.
    pub fn to_tune(self) -> heft_tune::Split<'a> {
        match self {
            Split::Dense(d) => heft_tune::Split::Dense {
                features: &d.features,
                columns: d.columns,
                labels: &d.labels,
            },
            Split::Tokens(t) => heft_tune::Split::Tokens {
                ids: &t.ids,
                lengths: &t.lengths,
                seq_len: t.seq_len,
                labels: &t.labels,
            },
        }
    }
}

/// Queries on a [`Model`] the CLI needs beyond `heft-tune`'s functions.
pub trait ModelExt {
    fn classes(&self) -> usize;
    /// Returns the values of the parameter `name`, if the model has it.
    fn tensor(&self, name: &str) -> Option<&[f32]>;
    fn evaluate(&self, split: Split<'_>) -> Result<Evaluation, String>;
}

impl ModelExt for Model {
    fn classes(&self) -> usize {
        match self {
            Model::Mlp(m) => *m.sizes().last().expect("an MLP has at least one layer"),
            Model::Sequence(s) => s.fc().out_features(),
        }
    }

    fn tensor(&self, name: &str) -> Option<&[f32]> {
        let (names, values) = match self {
            Model::Mlp(m) => (m.parameter_names(), m.parameters()),
            Model::Sequence(s) => (s.parameter_names(), s.parameters()),
        };
        let index = names.iter().position(|n| n == name)?;
        Some(values[index])
    }

    fn evaluate(&self, split: Split<'_>) -> Result<Evaluation, String> {
        heft_tune::evaluate(self, split.to_tune())
            .map_err(|e| format!("scoring the model failed: {e}"))
    }
}

/// Builds the search objective, with errors phrased for the command line.
pub fn objective(
    model: &Model,
    target: &Target,
    split: Split<'_>,
    bound: f32,
    fitness: Fitness,
    prune: bool,
) -> Result<ModelObjective, String> {
    check_target(model, target)?;
    ModelObjective::new(model, target, split.to_tune(), bound, fitness, prune)
        .map_err(|e| cannot_tune(target, &e))
}

/// Checks that `model` has the tensor `target` names (and its bias when
/// that is tuned too), so a wrong `--tensor` fails before any training or
/// scoring.
pub fn check_target(model: &Model, target: &Target) -> Result<(), String> {
    let names = heft_tune::tensor_names(model);
    if !names.contains(&target.tensor) {
        // A linear layer's bias is tuned with its weight.
        if let Some(layer) = target.tensor.strip_suffix(".bias") {
            let weight = format!("{layer}.weight");
            if names.contains(&weight) {
                return Err(format!(
                    "tensor `{}` is tuned together with its weight: pass --tensor {weight} \
                     --include-bias",
                    target.tensor
                ));
            }
        }
        return Err(format!(
            "unknown tensor `{}`: this model has {}; pass one of them with --tensor",
            target.tensor,
            names.join(", ")
        ));
    }
    heft_tune::check_target(model, target).map_err(|e| cannot_tune(target, &e))
}

fn cannot_tune(target: &Target, error: &heft_tune::TuneError) -> String {
    let fix = "drop --include-bias or pick another --tensor";
    match error {
        // The library's message names its own option; name the flag once.
        heft_tune::TuneError::NoBias { .. } => format!(
            "cannot tune {}: it has no bias of its own; {fix}",
            target.tensor
        ),
        _ if target.include_bias => format!("cannot tune {}: {error}; {fix}", target.tensor),
        _ => format!("cannot tune {}: {error}", target.tensor),
    }
}

#[cfg(test)]
mod tests {
    use super::cannot_tune;
    use heft_tune::{Target, TuneError};

    fn target(include_bias: bool) -> Target {
        Target {
            tensor: "embedding.weight".to_string(),
            include_bias,
        }
    }

    #[test]
    fn missing_bias_names_the_flag_once() {
        let error = TuneError::NoBias {
            tensor: "embedding.weight".to_string(),
        };
        let message = cannot_tune(&target(true), &error);
        assert_eq!(
            message,
            "cannot tune embedding.weight: it has no bias of its own; \
             drop --include-bias or pick another --tensor"
        );
    }

    #[test]
    fn other_errors_keep_their_text() {
        let error = TuneError::UnknownTensor {
            name: "x".to_string(),
            available: vec!["fc1.weight".to_string()],
        };
        let with_bias = cannot_tune(&target(true), &error);
        assert!(with_bias.starts_with("cannot tune embedding.weight: unknown tensor"));
        assert!(with_bias.ends_with("; drop --include-bias or pick another --tensor"));
        let without = cannot_tune(&target(false), &error);
        assert!(!without.contains("--include-bias"), "{without}");
    }
}
