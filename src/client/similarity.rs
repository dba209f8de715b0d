//! Text similarity for comparing two LLM answers that need not match word for word: ROUGE-L F1
//! over white-space tokens (lower-cased): the longest common subsequence of the two token
//! lists, as a harmonic mean of its share of each. 1 for equal texts, 0 for nothing in common.

/// Longest answers compared in full, in tokens; beyond it the first this many are compared
/// (the quadratic LCS stays under a few milliseconds off the live path).
pub const MAX_TOKENS: usize = 2_000;

/// ROUGE-L F1 of `a` against `b` (symmetric).
pub fn rouge_l_f1(a: &str, b: &str) -> f64 {
    let lower_a = a.to_lowercase();
    let lower_b = b.to_lowercase();
    let x: Vec<&str> = lower_a.split_whitespace().take(MAX_TOKENS).collect();
    let y: Vec<&str> = lower_b.split_whitespace().take(MAX_TOKENS).collect();
    if x.is_empty() && y.is_empty() {
        return 1.0;
    }
    if x.is_empty() || y.is_empty() {
        return 0.0;
    }
    let lcs = lcs_len(&x, &y) as f64;
    let (p, r) = (lcs / y.len() as f64, lcs / x.len() as f64);
    if lcs == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// Length of the longest common subsequence, two rows of the dynamic programme at a time.
fn lcs_len(x: &[&str], y: &[&str]) -> usize {
    let mut prev = vec![0usize; y.len() + 1];
    let mut cur = vec![0usize; y.len() + 1];
    for xi in x {
        for (j, yj) in y.iter().enumerate() {
            cur[j + 1] = if xi == yj {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[y.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(rouge_l_f1("The cat sat", "the  cat sat"), 1.0);
        assert_eq!(rouge_l_f1("", ""), 1.0);
        assert_eq!(rouge_l_f1("a b", ""), 0.0);
        assert_eq!(rouge_l_f1("a b c", "x y z"), 0.0);
        // LCS "the cat on the mat" (5) of 6 and 7 tokens: P = 5/7, R = 5/6.
        let f = rouge_l_f1("the cat sat on the mat", "the cat was lying on the mat");
        let (p, r) = (5.0 / 7.0, 5.0 / 6.0);
        assert!((f - 2.0 * p * r / (p + r)).abs() < 1e-12);
        assert_eq!(
            f,
            rouge_l_f1("the cat was lying on the mat", "the cat sat on the mat")
        );
    }
}
