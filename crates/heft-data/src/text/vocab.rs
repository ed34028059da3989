//! Tokeniser and vocabulary.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// Token id of padding after the end of a sequence.
pub const PAD_ID: u32 = 0;
/// Token id of a token that is not in the vocabulary.
pub const UNK_ID: u32 = 1;
/// Number of reserved ids before the first vocabulary token.
pub const RESERVED_IDS: usize = 2;

/// Splits `text` into lowercase tokens.
///
/// A token is a maximal run of letters, digits and apostrophes (`'` and the
/// typographic `’`), in the Unicode sense of `char::is_alphanumeric`.
/// Apostrophes at either end of a run are trimmed, so `'great'` gives
/// `great` while `don't` stays whole, and a run of apostrophes alone gives
/// no token.
pub fn tokenize(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || is_apostrophe(c)))
        .map(|run| run.trim_matches(is_apostrophe))
        .filter(|token| !token.is_empty())
        .map(str::to_lowercase)
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

/// A token-to-id map. Id 0 is padding ([`PAD_ID`]), id 1 stands for unknown
/// tokens ([`UNK_ID`]), and tokens get ids from 2 on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    /// Builds a vocabulary from token counts.
    ///
    /// Tokens seen fewer than `min_count` times are dropped. The rest are
    /// ordered by descending count, ties by ascending token (byte order), so
    /// the result does not depend on hash order. At most `max_size` ids are
    /// kept, counting the two reserved ones (a `max_size` below 2 keeps only
    /// those two).
    pub fn from_counts(counts: &HashMap<String, u64>, min_count: u64, max_size: usize) -> Vocab {
        let mut kept: Vec<(&String, u64)> = counts
            .iter()
            .filter(|(_, &count)| count >= min_count)
            .map(|(token, &count)| (token, count))
            .collect();
        kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        kept.truncate(max_size.saturating_sub(RESERVED_IDS));
        Vocab::from_tokens(kept.into_iter().map(|(token, _)| token.clone()).collect())
    }

    /// Builds a vocabulary that gives the tokens ids from 2 on, in order of
    /// first appearance. A repeated token keeps its first id and takes no
    /// new one, so `["a", "a", "b"]` gives `a` id 2, `b` id 3 and a length
    /// of 4.
    pub fn from_tokens(tokens: Vec<String>) -> Vocab {
        let mut ids = HashMap::with_capacity(tokens.len());
        let mut unique = Vec::with_capacity(tokens.len());
        for token in tokens {
            let next_id = (unique.len() + RESERVED_IDS) as u32;
            if let Entry::Vacant(slot) = ids.entry(token) {
                unique.push(slot.key().clone());
                slot.insert(next_id);
            }
        }
        Vocab {
            tokens: unique,
            ids,
        }
    }

    /// Returns the number of ids, the two reserved ones included.
    pub fn len(&self) -> usize {
        self.tokens.len() + RESERVED_IDS
    }

    /// Returns whether the vocabulary has no tokens besides the reserved ids.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Returns the id of `token`, or [`UNK_ID`].
    pub fn id(&self, token: &str) -> u32 {
        self.ids.get(token).copied().unwrap_or(UNK_ID)
    }

    /// Returns the token of `id`: `"<pad>"` and `"<unk>"` for the reserved
    /// ids, `None` past the end.
    pub fn token(&self, id: u32) -> Option<&str> {
        match id {
            PAD_ID => Some("<pad>"),
            UNK_ID => Some("<unk>"),
            _ => self
                .tokens
                .get(id as usize - RESERVED_IDS)
                .map(String::as_str),
        }
    }

    /// Returns the tokens in id order, starting at id 2.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }
}
