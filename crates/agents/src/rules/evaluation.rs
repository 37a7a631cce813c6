//! Measuring a classifier against labelled examples: accuracy, per-class recall and a confusion
//! matrix, printable as text. Used by the fixture tests and `salesdept classify`.

use std::collections::BTreeMap;
use std::fmt;

/// Counts of (expected, predicted) label pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfusionMatrix {
    /// The field measured, e.g. `classification`.
    pub field: String,
    /// Every label in the order to print, expected or predicted.
    pub labels: Vec<String>,
    counts: BTreeMap<(String, String), u32>,
}

impl ConfusionMatrix {
    /// An empty matrix over `labels` (more are added as they appear).
    pub fn new(field: &str, labels: &[&str]) -> Self {
        Self {
            field: field.to_owned(),
            labels: labels.iter().map(|label| (*label).to_owned()).collect(),
            counts: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, expected: &str, predicted: &str) {
        for label in [expected, predicted] {
            if !self.labels.iter().any(|known| known == label) {
                self.labels.push(label.to_owned());
            }
        }
        *self
            .counts
            .entry((expected.to_owned(), predicted.to_owned()))
            .or_default() += 1;
    }

    pub fn count(&self, expected: &str, predicted: &str) -> u32 {
        self.counts
            .get(&(expected.to_owned(), predicted.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> u32 {
        self.counts.values().sum()
    }

    pub fn correct(&self) -> u32 {
        self.counts
            .iter()
            .filter(|((expected, predicted), _)| expected == predicted)
            .map(|(_, count)| count)
            .sum()
    }

    /// Share of examples predicted right; 0 when there are none.
    pub fn accuracy(&self) -> f64 {
        match self.total() {
            0 => 0.0,
            total => f64::from(self.correct()) / f64::from(total),
        }
    }

    /// Of the examples labelled `label`, the share predicted `label`; None when there are none.
    pub fn recall(&self, label: &str) -> Option<f64> {
        let labelled: u32 = self
            .counts
            .iter()
            .filter(|((expected, _), _)| expected == label)
            .map(|(_, count)| count)
            .sum();
        (labelled > 0).then(|| f64::from(self.count(label, label)) / f64::from(labelled))
    }
}

impl fmt::Display for ConfusionMatrix {
    /// Rows are the labels, columns the predictions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: accuracy {:.1} % ({} of {})",
            self.field,
            self.accuracy() * 100.0,
            self.correct(),
            self.total()
        )?;
        let width = self
            .labels
            .iter()
            .map(String::len)
            .chain([self.field.len(), "label \\ predicted".len()])
            .max()
            .unwrap_or(8);
        write!(f, "  {:<width$}", "label \\ predicted")?;
        for label in &self.labels {
            write!(f, " {label:>w$}", w = label.len().max(3))?;
        }
        writeln!(f)?;
        for expected in &self.labels {
            write!(f, "  {expected:<width$}")?;
            for predicted in &self.labels {
                write!(
                    f,
                    " {:>w$}",
                    self.count(expected, predicted),
                    w = predicted.len().max(3)
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_recall_and_printing() {
        let mut matrix = ConfusionMatrix::new("intent", &["Yes", "No"]);
        matrix.record("Yes", "Yes");
        matrix.record("Yes", "No");
        matrix.record("No", "No");
        matrix.record("No", "Maybe");
        assert_eq!(matrix.total(), 4);
        assert_eq!(matrix.correct(), 2);
        assert!((matrix.accuracy() - 0.5).abs() < 1e-9);
        assert_eq!(matrix.recall("Yes"), Some(0.5));
        assert_eq!(matrix.recall("Maybe"), None);
        let text = matrix.to_string();
        assert!(
            text.starts_with("intent: accuracy 50.0 % (2 of 4)"),
            "{text}"
        );
        assert!(text.contains("Maybe"), "{text}");
        assert_eq!(ConfusionMatrix::new("x", &[]).accuracy(), 0.0);
    }
}
