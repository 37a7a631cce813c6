//! Text matching for the rules: words and phrases on token boundaries, clause-aware negation.
//!
//! A text becomes a list of lower-case tokens. Punctuation that ends a clause (`.,;:!?`, a
//! dash between spaces) and the words `but`, `however`, `though`, `although` become a break
//! token, so a phrase never matches across clauses and a negation never reaches into the next
//! clause ("not sure yet, but interested" is not a negated "interested").

/// The token that stands for a clause break.
pub const BREAK: &str = "|";

/// Words that end a clause like punctuation does.
const CLAUSE_WORDS: &[&str] = &["but", "however", "though", "although"];

/// Words that negate what follows them in the same clause (within [`NEGATION_WINDOW`] tokens).
const NEGATORS: &[&str] = &[
    "not",
    "no",
    "never",
    "don't",
    "dont",
    "doesn't",
    "didn't",
    "isn't",
    "aren't",
    "won't",
    "can't",
    "cannot",
    "without",
    "longer",
    "stopped",
    "quit",
    "retired",
    "stepped",
    "stepping",
    "nor",
    "neither",
    "hardly",
    "rarely",
    "used",
    "formerly",
    "previously",
];

/// How many tokens before a match a negator may stand.
pub const NEGATION_WINDOW: usize = 4;

/// A text split into lower-case tokens with clause breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    tokens: Vec<String>,
}

impl Tokens {
    pub fn new(text: &str) -> Self {
        let mut tokens = Vec::new();
        let mut word = String::new();
        let chars: Vec<char> = text.chars().collect();
        let flush = |word: &mut String, tokens: &mut Vec<String>| {
            if !word.is_empty() {
                let lower = word.to_lowercase();
                if CLAUSE_WORDS.contains(&lower.as_str()) {
                    push_break(tokens);
                } else {
                    tokens.push(lower);
                }
                word.clear();
            }
        };
        for (index, &c) in chars.iter().enumerate() {
            let previous = index.checked_sub(1).map(|i| chars[i]);
            let next = chars.get(index + 1).copied();
            let joins_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
            match c {
                c if c.is_alphanumeric() => word.push(c),
                // An apostrophe inside a word belongs to it: don't, I'm, cc'd, O'Reilly.
                '\'' | '\u{2019}' if joins_word(previous) && joins_word(next) => word.push('\''),
                // A hyphen inside a word separates its parts without ending the clause:
                // co-founder, open-source, in-person.
                '-' | '/' | '&' | '+' if joins_word(previous) && joins_word(next) => {
                    flush(&mut word, &mut tokens)
                }
                '.' if joins_word(previous) && joins_word(next) => flush(&mut word, &mut tokens),
                '.' | ',' | ';' | ':' | '!' | '?' | '-' | '\u{2013}' | '\u{2014}' | '(' | ')'
                | '\n' => {
                    flush(&mut word, &mut tokens);
                    push_break(&mut tokens);
                }
                _ => flush(&mut word, &mut tokens),
            }
        }
        flush(&mut word, &mut tokens);
        Self { tokens }
    }

    pub fn as_slice(&self) -> &[String] {
        &self.tokens
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.iter().all(|token| token == BREAK)
    }

    /// Where `phrase` starts, each time it occurs. A phrase is words separated by spaces; a
    /// word ending in `*` matches any token starting with the rest (`speak*` matches
    /// `speaker`, `speaking`).
    pub fn find(&self, phrase: &str) -> Vec<usize> {
        let pattern: Vec<&str> = phrase.split_whitespace().collect();
        if pattern.is_empty() || pattern.len() > self.tokens.len() {
            return Vec::new();
        }
        (0..=self.tokens.len() - pattern.len())
            .filter(|&start| {
                pattern
                    .iter()
                    .zip(&self.tokens[start..])
                    .all(|(wanted, token)| word_matches(wanted, token))
            })
            .collect()
    }

    pub fn contains(&self, phrase: &str) -> bool {
        !self.find(phrase).is_empty()
    }

    /// Whether any of `phrases` occurs.
    pub fn contains_any(&self, phrases: &[&str]) -> bool {
        phrases.iter().any(|phrase| self.contains(phrase))
    }

    /// The first of `phrases` that occurs.
    pub fn first_of<'a>(&self, phrases: &[&'a str]) -> Option<&'a str> {
        phrases.iter().copied().find(|phrase| self.contains(phrase))
    }

    /// Whether a negator stands in the same clause within [`NEGATION_WINDOW`] tokens before
    /// `start`.
    pub fn negated_at(&self, start: usize) -> bool {
        self.tokens[..start]
            .iter()
            .rev()
            .take_while(|token| token.as_str() != BREAK)
            .take(NEGATION_WINDOW)
            .any(|token| NEGATORS.contains(&token.as_str()))
    }

    /// Whether `phrase` occurs at least once without a negation before it.
    pub fn contains_affirmed(&self, phrase: &str) -> bool {
        self.find(phrase)
            .into_iter()
            .any(|start| !self.negated_at(start))
    }

    /// Whether `phrase` occurs at least once with a negation before it.
    pub fn contains_negated(&self, phrase: &str) -> bool {
        self.find(phrase)
            .into_iter()
            .any(|start| self.negated_at(start))
    }
}

fn push_break(tokens: &mut Vec<String>) {
    if tokens.last().is_some_and(|last| last != BREAK) {
        tokens.push(BREAK.to_owned());
    }
}

fn word_matches(wanted: &str, token: &str) -> bool {
    match wanted.strip_suffix('*') {
        Some(prefix) => token.starts_with(prefix),
        None => wanted == token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_apostrophes_and_split_hyphenated_words() {
        let tokens = Tokens::new("I\u{2019}m a Co-founder, don't - open-source!");
        assert_eq!(
            tokens.as_slice(),
            [
                "i'm", "a", "co", "founder", "|", "don't", "|", "open", "source", "|"
            ]
        );
    }

    #[test]
    fn phrases_match_on_word_boundaries_with_prefix_wildcards() {
        let cases: &[(&str, &str, bool, &str)] = &[
            ("Regular speaker at VLDB", "speak*", true, "prefix wildcard"),
            ("Spokesperson", "spoke", false, "whole tokens only"),
            ("Spoke at QCon", "spoke at", true, "two-word phrase"),
            (
                "I spoke. At home",
                "spoke at",
                false,
                "no match across a clause break",
            ),
            (
                "open-source ledger",
                "open source",
                true,
                "hyphen splits words",
            ),
        ];
        for (text, phrase, expected, why) in cases {
            assert_eq!(
                Tokens::new(text).contains(phrase),
                *expected,
                "{why}: {text:?}"
            );
        }
    }

    #[test]
    fn negation_stays_in_its_clause() {
        let cases: &[(&str, &str, bool, &str)] = &[
            ("I am not interested", "interested", true, "plain negation"),
            (
                "Not sure yet but interested",
                "interested",
                false,
                "but opens a new clause",
            ),
            (
                "not yet interested",
                "interested",
                true,
                "yet does not end the clause",
            ),
            (
                "no longer speaking at conferences",
                "speaking",
                true,
                "no longer",
            ),
            (
                "Not now. Interested later",
                "interested",
                false,
                "a full stop ends the clause",
            ),
            (
                "I own launches, not event budgets",
                "budget*",
                true,
                "negated after a comma",
            ),
            ("Budget owner for events", "budget*", false, "no negator"),
        ];
        for (text, phrase, expected, why) in cases {
            assert_eq!(
                Tokens::new(text).contains_negated(phrase),
                *expected,
                "{why}: {text:?}"
            );
        }
    }
}
