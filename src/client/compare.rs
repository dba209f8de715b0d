//! Live answer against shadow answer, row by row: classes agree or not; numbers (regression
//! values, or the probability of an agreed class) agree within tolerance, and their absolute
//! and relative differences are the divergence; generated text matches exactly or normalized.

use serde::{Deserialize, Serialize};

use super::answer::{close, normalize, Answer};

/// How text answers are compared (`[[shadow.targets]] text_match`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TextMatch {
    /// Byte-for-byte equal.
    Exact,
    /// Equal after lower-casing, trimming and collapsing white space.
    #[default]
    Normalized,
    /// ROUGE-L F1 over words at least the target's `text_similarity_min`: LLM answers that say
    /// the same in slightly different words agree.
    RougeL,
}

/// What one comparison came to (`result` label of `inferwatch_shadow_comparisons_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Agree,
    Disagree,
    /// Nothing comparable: row counts differ, or one side has a class and the other a number.
    Incomparable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Agree => "agree",
            Verdict::Disagree => "disagree",
            Verdict::Incomparable => "incomparable",
        }
    }
}

/// Every comparison of one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// One per row (and one for the text, when both sides have text).
    pub verdicts: Vec<Verdict>,
    /// Largest absolute and relative difference between compared numbers, if any were.
    pub max_abs: Option<f64>,
    pub max_rel: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
    pub text: TextMatch,
    /// `RougeL`: the least similarity that agrees.
    pub text_min: f64,
}

pub fn compare(live: &Answer, shadow: &Answer, tol: Tolerance) -> Comparison {
    let mut out = Comparison::default();
    let mut diff = |a: f64, b: f64| {
        let abs = (a - b).abs();
        let rel = if a == b {
            0.0
        } else {
            abs / a.abs().max(b.abs())
        };
        out.max_abs = Some(out.max_abs.map_or(abs, |m| m.max(abs)));
        out.max_rel = Some(out.max_rel.map_or(rel, |m| m.max(rel)));
    };
    let mut verdicts = Vec::new();
    if live.predictions.len() != shadow.predictions.len() {
        verdicts.push(Verdict::Incomparable);
    } else {
        for (l, s) in live.predictions.iter().zip(&shadow.predictions) {
            let v = match (&l.class, &s.class, l.value, s.value) {
                (Some(a), Some(b), _, _) => {
                    if a == b {
                        if let (Some(x), Some(y)) = (l.confidence, s.confidence) {
                            diff(x, y);
                        }
                        Verdict::Agree
                    } else {
                        Verdict::Disagree
                    }
                }
                (None, None, Some(a), Some(b)) => {
                    diff(a, b);
                    if close(b, a, tol.abs, tol.rel) {
                        Verdict::Agree
                    } else {
                        Verdict::Disagree
                    }
                }
                _ => Verdict::Incomparable,
            };
            verdicts.push(v);
        }
    }
    if let (Some(a), Some(b)) = (&live.text, &shadow.text) {
        let same = match tol.text {
            TextMatch::Exact => a == b,
            TextMatch::Normalized => normalize(a) == normalize(b),
            TextMatch::RougeL => super::similarity::rouge_l_f1(a, b) >= tol.text_min,
        };
        verdicts.push(if same {
            Verdict::Agree
        } else {
            Verdict::Disagree
        });
    }
    out.verdicts = verdicts;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Prediction;

    fn classes(c: &[(&str, f64)]) -> Answer {
        Answer {
            predictions: c
                .iter()
                .map(|(c, p)| Prediction {
                    class: Some(c.to_string()),
                    confidence: Some(*p),
                    value: None,
                })
                .collect(),
            ..Answer::default()
        }
    }

    const TOL: Tolerance = Tolerance {
        abs: 1e-6,
        rel: 1e-4,
        text: TextMatch::Normalized,
        text_min: 0.8,
    };

    #[test]
    fn rows_text_and_divergence() {
        let c = compare(
            &classes(&[("a", 0.9), ("b", 0.6)]),
            &classes(&[("a", 0.8), ("c", 0.5)]),
            TOL,
        );
        assert_eq!(c.verdicts, vec![Verdict::Agree, Verdict::Disagree]);
        assert!((c.max_abs.unwrap() - 0.1).abs() < 1e-12);
        let c = compare(&classes(&[("a", 0.9)]), &classes(&[]), TOL);
        assert_eq!(c.verdicts, vec![Verdict::Incomparable]);
        let value = |v: f64| Answer {
            predictions: vec![Prediction {
                value: Some(v),
                ..Prediction::default()
            }],
            text: Some(" Hello  World".into()),
            json: None,
        };
        let c = compare(&value(100.0), &value(100.005), TOL);
        assert_eq!(c.verdicts, vec![Verdict::Agree, Verdict::Agree]);
        let c = compare(&value(100.0), &value(101.0), TOL);
        assert_eq!(c.verdicts[0], Verdict::Disagree);
        assert!((c.max_rel.unwrap() - 1.0 / 101.0).abs() < 1e-12);
        let mut other = value(100.0);
        other.text = Some("hello world".into());
        let exact = Tolerance {
            text: TextMatch::Exact,
            ..TOL
        };
        assert_eq!(
            compare(&value(100.0), &other, TOL).verdicts[1],
            Verdict::Agree
        );
        assert_eq!(
            compare(&value(100.0), &other, exact).verdicts[1],
            Verdict::Disagree
        );
        // ROUGE-L: "hello world" against "hello there world" is F1 0.8.
        other.text = Some("hello there world".into());
        let rouge = |min| Tolerance {
            text: TextMatch::RougeL,
            text_min: min,
            ..TOL
        };
        assert_eq!(
            compare(&value(100.0), &other, rouge(0.8)).verdicts[1],
            Verdict::Agree
        );
        assert_eq!(
            compare(&value(100.0), &other, rouge(0.81)).verdicts[1],
            Verdict::Disagree
        );
    }
}
