//! Shewhart individuals / X-bar chart on standardized subgroup means, with the Western Electric
//! zone rules, each switchable.
//!
//! Rules (Western Electric Handbook, 1956; Montgomery, *Introduction to Statistical Quality
//! Control*, §5.3.6):
//! 1. one point beyond `limit`·σ (3σ classically);
//! 2. two of three consecutive points beyond 2σ on the same side;
//! 3. four of five consecutive points beyond 1σ on the same side;
//! 4. eight consecutive points on the same side of the centre line.
//!
//! In-control ARL (Champ & Woodall 1987, Technometrics 29(4), Table 1): rule 1 alone 370.4; rules
//! 1–4 together 91.75. The history is kept as bit registers, so a point costs a few shifts and
//! popcounts.

use super::{Chart, Point, Rule, Rules};

/// Which Western Electric rules beyond rule 1 are on (rule 1 is always on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeRules {
    pub two_of_three: bool,
    pub four_of_five: bool,
    pub eight_in_a_row: bool,
}

impl WeRules {
    pub const NONE: WeRules = WeRules {
        two_of_three: false,
        four_of_five: false,
        eight_in_a_row: false,
    };
    pub const ALL: WeRules = WeRules {
        two_of_three: true,
        four_of_five: true,
        eight_in_a_row: true,
    };
}

#[derive(Debug, Clone)]
pub struct Shewhart {
    limit: f64,
    rules: WeRules,
    /// Bit i set: the point i steps back was beyond +2σ (resp. below −2σ, beyond ±1σ).
    up2: u8,
    down2: u8,
    up1: u8,
    down1: u8,
    /// Consecutive points above (positive) or below (negative) the centre line.
    run: i32,
}

impl Shewhart {
    /// `limit`: rule 1's multiple of σ (3 classically).
    pub fn new(limit: f64, rules: WeRules) -> Self {
        Self {
            limit,
            rules,
            up2: 0,
            down2: 0,
            up1: 0,
            down1: 0,
            run: 0,
        }
    }

    pub fn limit(&self) -> f64 {
        self.limit
    }

    pub fn rules(&self) -> WeRules {
        self.rules
    }

    /// The part of the history that can still matter to a future rule (the last 2 points for
    /// rule 2, 4 for rule 3, a run of at most 7 for rule 4): the Markov-chain state of Champ &
    /// Woodall, read from the chart itself so that the exact ARL describes this very code.
    pub(crate) fn state_key(&self) -> (u8, u8, u8, u8, i8) {
        (
            self.up2 & 0b11,
            self.down2 & 0b11,
            self.up1 & 0b1111,
            self.down1 & 0b1111,
            self.run.clamp(-7, 7) as i8,
        )
    }

    pub(crate) fn from_key(limit: f64, rules: WeRules, key: (u8, u8, u8, u8, i8)) -> Self {
        Self {
            limit,
            rules,
            up2: key.0,
            down2: key.1,
            up1: key.2,
            down1: key.3,
            run: i32::from(key.4),
        }
    }
}

impl Chart for Shewhart {
    fn observe(&mut self, z: f64) -> Point {
        // Shift the registers: bit 0 is the current point.
        self.up2 = (self.up2 << 1) | u8::from(z > 2.0);
        self.down2 = (self.down2 << 1) | u8::from(z < -2.0);
        self.up1 = (self.up1 << 1) | u8::from(z > 1.0);
        self.down1 = (self.down1 << 1) | u8::from(z < -1.0);
        self.run = if z > 0.0 {
            self.run.max(0) + 1
        } else if z < 0.0 {
            self.run.min(0) - 1
        } else {
            0
        };
        let mut fired = Rules::NONE;
        if z.abs() > self.limit || z.is_nan() {
            fired = fired.with(Rule::Limit);
        }
        let r = self.rules;
        if r.two_of_three
            && ((self.up2 & 0b111).count_ones() >= 2 || (self.down2 & 0b111).count_ones() >= 2)
        {
            fired = fired.with(Rule::We2);
        }
        if r.four_of_five
            && ((self.up1 & 0b1_1111).count_ones() >= 4
                || (self.down1 & 0b1_1111).count_ones() >= 4)
        {
            fired = fired.with(Rule::We3);
        }
        if r.eight_in_a_row && self.run.unsigned_abs() >= 8 {
            fired = fired.with(Rule::We4);
        }
        if fired.any() {
            self.reset();
        }
        Point {
            statistic: z,
            center: 0.0,
            upper: self.limit,
            lower: -self.limit,
            fired,
        }
    }

    fn reset(&mut self) {
        self.up2 = 0;
        self.down2 = 0;
        self.up1 = 0;
        self.down1 = 0;
        self.run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(chart: &mut Shewhart, zs: &[f64]) -> Vec<Rules> {
        zs.iter().map(|&z| chart.observe(z).fired).collect()
    }

    #[test]
    fn rule_one_only_beyond_the_limit() {
        let mut c = Shewhart::new(3.0, WeRules::NONE);
        let f = feed(&mut c, &[2.9, -2.99, 3.01, -3.5]);
        assert_eq!(f[0], Rules::NONE);
        assert_eq!(f[1], Rules::NONE);
        assert!(f[2].contains(Rule::Limit));
        assert!(f[3].contains(Rule::Limit));
    }

    #[test]
    fn two_of_three_beyond_two_sigma_same_side() {
        let mut c = Shewhart::new(3.0, WeRules::ALL);
        let f = feed(&mut c, &[2.5, 0.1, 2.2]);
        assert_eq!(f[2], Rules::NONE.with(Rule::We2));
        // Opposite sides do not count together.
        let mut c = Shewhart::new(3.0, WeRules::ALL);
        assert!(feed(&mut c, &[2.5, -2.5, 0.0]).iter().all(|r| !r.any()));
    }

    #[test]
    fn four_of_five_beyond_one_sigma() {
        let mut c = Shewhart::new(3.0, WeRules::ALL);
        let f = feed(&mut c, &[-1.5, -1.2, 0.5, -1.1, -1.9]);
        assert_eq!(f[4], Rules::NONE.with(Rule::We3));
        assert!(f[..4].iter().all(|r| !r.any()));
    }

    #[test]
    fn eight_in_a_row_then_restart() {
        let mut c = Shewhart::new(3.0, WeRules::ALL);
        let f = feed(&mut c, &[0.3; 8]);
        assert_eq!(f[7], Rules::NONE.with(Rule::We4));
        assert!(f[..7].iter().all(|r| !r.any()));
        // After the signal the chart restarted: seven more are not enough.
        assert!(feed(&mut c, &[0.3; 7]).iter().all(|r| !r.any()));
        let mut off = Shewhart::new(3.0, WeRules::NONE);
        assert!(feed(&mut off, &[0.3; 20]).iter().all(|r| !r.any()));
    }
}
