//! The output rule shared by the tensor protocols: class labels and/or scores per row become one
//! [`Prediction`] per row (argmax class and its probability, softmax for logits; a value for
//! regressors), as configured per route in `[proxy.routes.prediction]`.

use crate::routes::config::{PredictionConfig, PredictionKind, ScoreKind};

use super::tensor::{Matrix, Values};
use super::DecodeError;

/// One prediction: one row of a batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prediction {
    /// The predicted class (classifiers).
    pub class: Option<String>,
    /// Probability of `class` (after softmax when the scores are logits).
    pub confidence: Option<f64>,
    /// The predicted number (regressors).
    pub value: Option<f64>,
}

/// A route's output rule: its prediction section, which the adapters read (output names, class
/// labels, JSON pointers), and how rows of scores become predictions.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// The route's `[proxy.routes.prediction]` section as configured (validated at load); the
    /// rule keeps it whole rather than copying it field by field.
    pub cfg: PredictionConfig,
    /// How many leading columns of a request's input table anything on the route reads (the
    /// tracked features, the bounded ones): adapters may leave the rest unparsed. `None`: all
    /// (an ONNX shadow or another hook reads every input).
    pub read_columns: Option<usize>,
}

impl From<PredictionConfig> for Rule {
    fn from(cfg: PredictionConfig) -> Self {
        Self {
            cfg,
            read_columns: None,
        }
    }
}

impl Rule {
    pub fn new(cfg: &PredictionConfig) -> Self {
        Self::from(cfg.clone())
    }

    /// The same rule, reading only the first `n` input columns and those with bounds.
    pub fn reading_features(mut self, n: usize) -> Self {
        let bounded = self.cfg.feature_bounds.iter().map(|b| b.feature + 1).max();
        self.read_columns = Some(n.max(bounded.unwrap_or(0)));
        self
    }

    /// The class named by score index `idx`.
    pub fn class_name(&self, idx: usize) -> String {
        self.cfg
            .class_labels
            .get(idx)
            .cloned()
            .unwrap_or_else(|| idx.to_string())
    }

    /// A class label given as a number: an integral index maps through `class_labels` when it
    /// names one, else it is written as an integer.
    pub fn numeric_class(&self, x: f64) -> String {
        if x.fract() == 0.0 && x.is_finite() {
            if x >= 0.0 && (x as usize) < self.cfg.class_labels.len() {
                return self.cfg.class_labels[x as usize].clone();
            }
            return format!("{}", x as i64);
        }
        format!("{x}")
    }

    /// Argmax of one row of scores and its probability. One score is a binary classifier's
    /// probability (or logit) of class 1.
    pub fn classify(&self, scores: &[f64]) -> Option<(usize, f64)> {
        if scores.is_empty() || scores.iter().any(|s| s.is_nan()) {
            return None;
        }
        if let [s] = scores {
            let p = match self.cfg.scores {
                ScoreKind::Probabilities => *s,
                ScoreKind::Logits => 1.0 / (1.0 + (-s).exp()),
            };
            return Some(if p >= 0.5 { (1, p) } else { (0, 1.0 - p) });
        }
        let (idx, &max) =
            scores.iter().enumerate().fold(
                (0, &scores[0]),
                |best, (i, s)| if s > best.1 { (i, s) } else { best },
            );
        let confidence = match self.cfg.scores {
            ScoreKind::Probabilities => max,
            ScoreKind::Logits => {
                if max.is_infinite() {
                    return None;
                }
                // Stable softmax: exp(x - max) so nothing overflows; the argmax's share is
                // 1 / sum(exp(x - max)).
                1.0 / scores.iter().map(|s| (s - max).exp()).sum::<f64>()
            }
        };
        Some((idx, confidence))
    }

    /// Whether the outputs make a classification.
    fn classifies(&self, labels: Option<&Matrix>, scores: Option<&Matrix>) -> bool {
        match self.cfg.kind {
            PredictionKind::Classification => true,
            PredictionKind::Regression => false,
            PredictionKind::Auto => labels.is_some() || scores.is_some_and(|s| s.width > 1),
        }
    }

    /// One prediction per row from a label tensor and/or a score tensor.
    pub fn predictions(
        &self,
        labels: Option<&Matrix>,
        scores: Option<&Matrix>,
    ) -> Result<Vec<Prediction>, DecodeError> {
        if let Some(s) = scores {
            if matches!(s.values, Values::Str(_)) {
                return Err(DecodeError::Invalid("scores must be numbers".into()));
            }
        }
        let rows = match (labels, scores) {
            (None, None) => return Ok(Vec::new()),
            (Some(l), Some(s)) if l.rows != s.rows => {
                return Err(DecodeError::Invalid(format!(
                    "{} label rows but {} score rows",
                    l.rows, s.rows
                )))
            }
            (Some(l), _) => l.rows,
            (None, Some(s)) => s.rows,
        };
        let mut out = Vec::with_capacity(rows);
        if self.classifies(labels, scores) {
            for r in 0..rows {
                let scored = scores
                    .and_then(|s| s.row_num(r))
                    .and_then(|s| self.classify(s));
                let mut confidence = scored.map(|(_, c)| c);
                let class = match labels {
                    Some(l) if l.width > 0 => Some(match &l.values {
                        Values::Str(v) => match triton_classification(&v[r * l.width]) {
                            // Triton's classification extension: the row's first entry is
                            // its top class; its score is the confidence when a probability.
                            Some((score, idx, label)) => {
                                if confidence.is_none() && (0.0..=1.0).contains(&score) {
                                    confidence = Some(score);
                                }
                                label.map_or_else(|| self.class_name(idx), str::to_string)
                            }
                            None => v[r * l.width].clone(),
                        },
                        Values::Num(v) => self.numeric_class(v[r * l.width]),
                    }),
                    _ => scored.map(|(idx, _)| self.class_name(idx)),
                };
                out.push(Prediction {
                    class,
                    confidence,
                    value: None,
                });
            }
        } else {
            let source = scores.or(labels).filter(|m| m.width > 0);
            for r in 0..rows {
                let value = source.and_then(|m| match &m.values {
                    Values::Num(v) => v.get(r * m.width).copied(),
                    Values::Str(v) => v.get(r * m.width).and_then(|s| s.parse().ok()),
                });
                out.push(Prediction {
                    value,
                    ..Prediction::default()
                });
            }
        }
        Ok(out)
    }
}

/// Triton's classification extension writes each of a row's top classes as
/// `score:index[:label]` (a BYTES output, best first): `(score, index, label)`.
fn triton_classification(s: &str) -> Option<(f64, usize, Option<&str>)> {
    let mut parts = s.splitn(3, ':');
    let score = parts.next()?.parse::<f64>().ok()?;
    let idx = parts.next()?.parse::<usize>().ok()?;
    let label = parts.next().filter(|l| !l.is_empty());
    Some((score, idx, label))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rows: usize, width: usize, v: Vec<f64>) -> Matrix {
        Matrix {
            rows,
            width,
            values: Values::Num(v),
        }
    }

    #[test]
    fn argmax_probability_and_softmax() {
        let rule = Rule::default();
        assert_eq!(rule.classify(&[0.1, 0.7, 0.2]), Some((1, 0.7)));
        let logits = Rule::from(PredictionConfig {
            scores: ScoreKind::Logits,
            ..PredictionConfig::default()
        });
        let (idx, c) = logits.classify(&[1.0, 3.0, 1.0]).unwrap();
        let e = 1f64.exp();
        let e3 = 3f64.exp();
        assert_eq!(idx, 1);
        assert!((c - e3 / (e3 + 2.0 * e)).abs() < 1e-12);
        // Large logits do not overflow.
        let (_, c) = logits.classify(&[1000.0, 0.0]).unwrap();
        assert!((c - 1.0).abs() < 1e-12);
        assert_eq!(rule.classify(&[f64::NAN, 1.0]), None);
        // Binary: one probability of class 1.
        assert_eq!(rule.classify(&[0.25]), Some((0, 0.75)));
        assert_eq!(logits.classify(&[0.0]), Some((1, 0.5)));
    }

    #[test]
    fn triton_classification_strings() {
        let rule = Rule::from(PredictionConfig {
            class_labels: vec!["setosa".into(), "versicolor".into(), "virginica".into()],
            ..PredictionConfig::default()
        });
        let labels = Matrix {
            rows: 3,
            width: 2,
            values: Values::Str(
                [
                    "0.9:2:virginica",
                    "0.1:1:versicolor",
                    "0.8:0",
                    "0.2:1",
                    "7.5:1",
                    "1:0",
                ]
                .map(String::from)
                .to_vec(),
            ),
        };
        let p = rule.predictions(Some(&labels), None).unwrap();
        assert_eq!(p[0].class.as_deref(), Some("virginica"));
        assert_eq!(p[0].confidence, Some(0.9));
        assert_eq!(
            p[1].class.as_deref(),
            Some("setosa"),
            "index through class_labels"
        );
        assert_eq!(p[2].class.as_deref(), Some("versicolor"));
        assert_eq!(p[2].confidence, None, "a logit is not a confidence");
        assert_eq!(triton_classification("setosa"), None);
        assert_eq!(triton_classification("0.5:x"), None);
    }

    #[test]
    fn rows_become_predictions() {
        let rule = Rule::from(PredictionConfig {
            class_labels: vec!["setosa".into(), "versicolor".into(), "virginica".into()],
            ..PredictionConfig::default()
        });
        let scores = m(2, 3, vec![0.8, 0.1, 0.1, 0.1, 0.2, 0.7]);
        let p = rule.predictions(None, Some(&scores)).unwrap();
        assert_eq!(p[0].class.as_deref(), Some("setosa"));
        assert_eq!(p[1].class.as_deref(), Some("virginica"));
        assert_eq!(p[1].confidence, Some(0.7));
        // Integer labels from a predict output map through class_labels; confidence from scores.
        let labels = m(2, 1, vec![0.0, 2.0]);
        let p = rule.predictions(Some(&labels), Some(&scores)).unwrap();
        assert_eq!(p[1].class.as_deref(), Some("virginica"));
        assert_eq!(p[0].confidence, Some(0.8));
        // Labels alone: classes without confidence.
        let p = Rule::default().predictions(Some(&labels), None).unwrap();
        assert_eq!(p[1].class.as_deref(), Some("2"));
        assert_eq!(p[1].confidence, None);
        // One number per row: regression.
        let p = Rule::default()
            .predictions(None, Some(&m(3, 1, vec![1.5, 2.5, 3.5])))
            .unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[2].value, Some(3.5));
        assert!(rule
            .predictions(Some(&m(1, 1, vec![0.0])), Some(&scores))
            .is_err());
    }
}
